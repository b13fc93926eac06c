"""The body guard: size caps, JSON nesting, NUL in URLs, body deadlines, before any parsing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpumarket.coordinator.http.body_guard import (
    BodyGuard,
    BodyLimits,
    RouteBody,
    json_nesting_exceeds,
)
from tests.helpers import bearer, cpu_spec, register


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_is_measured_without_recursing() -> None:
    assert not json_nesting_exceeds(b'{"a": [1, {"b": [2]}]}', 4)
    assert json_nesting_exceeds(b'{"a": [1, {"b": [2]}]}', 3)
    assert not json_nesting_exceeds(_nested(32), 32)
    assert json_nesting_exceeds(_nested(33), 32)
    # a million levels is answered at once (no recursion, no per-byte Python loop)
    assert json_nesting_exceeds(_nested(1_000_000), 32)


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = json.dumps({"command": ["[" * 500, "{" * 500, '\\"[[[']}).encode()
    assert not json_nesting_exceeds(body, 4)


def test_unclosed_brackets_count_as_too_deep() -> None:
    # a recursive parser would descend into every one of them before failing
    assert json_nesting_exceeds(b"[" * 100_000, 32)
    assert json_nesting_exceeds(b'{"a": [}', 32)


@pytest.mark.parametrize("path", ["/v1/auth/challenge", "/v1/offers/match", "/v1/jobs"])
def test_a_deeply_nested_body_is_refused_before_parsing(client: TestClient, path: str) -> None:
    reply = client.post(path, content=_nested(5_000), headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert "nests deeper than 32 levels" in reply.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_an_announced_body_over_the_cap_is_refused_without_reading_it(
    client: TestClient,
) -> None:
    dev, _ = register(client, "developer")
    cap = client.app.state.settings.max_request_bytes  # type: ignore[attr-defined]
    big = json.dumps(cpu_spec(env={"BIG": "x" * cap})).encode()
    reply = client.post(
        "/v1/jobs",
        content=big,
        headers={**bearer(dev), "Content-Type": "application/json"},
    )
    assert reply.status_code == 413
    assert reply.json()["code"] == "limit_exceeded"
    assert f"{cap} byte cap" in reply.json()["detail"]
    listed = client.get("/v1/jobs", headers=bearer(dev)).json()
    assert listed["items"] == []


@pytest.mark.parametrize(
    "url",
    ["/v1/jobs/job_%00x", "/v1/offers?gpu_model=A%00100", "/v1/jobs?cursor=%00"],
)
def test_a_nul_in_the_url_is_a_clear_4xx(client: TestClient, url: str) -> None:
    reply = client.get(url)
    assert reply.status_code == 422
    assert "NUL" in reply.json()["detail"]


def _run_guard(limits: BodyLimits, messages: list[Any], delay: float = 0.0) -> list[Any]:
    """Drive the guard as a server would, with an app that reads the whole body."""
    sent: list[Any] = []
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"".join(seen)})

    async def receive() -> Any:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(delay or 3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": []}
    asyncio.run(BodyGuard(app, limits)(scope, receive, send))
    return sent


def _limits(**overrides: Any) -> BodyLimits:
    values: dict[str, Any] = {
        "max_body_bytes": 1024,
        "max_json_depth": 8,
        "read_timeout_seconds": 0.05,
        "route_body": lambda method, path: None,
    }
    values.update(overrides)
    return BodyLimits(**values)


def test_a_body_that_stops_arriving_gets_a_408() -> None:
    sent = _run_guard(_limits(), [{"type": "http.request", "body": b"{", "more_body": True}])
    assert sent[0]["status"] == 408
    assert b"request_timeout" in sent[1]["body"]


def test_a_chunked_body_growing_past_the_cap_is_read_to_its_end_then_refused() -> None:
    chunk = {"type": "http.request", "body": b" " * 600, "more_body": True}
    messages = [chunk, dict(chunk), dict(chunk), {**chunk, "more_body": False}]
    sent = _run_guard(_limits(), messages)
    assert sent[0]["status"] == 413
    assert messages == []  # drained: the client reads the 413 instead of a reset


def test_an_announced_body_far_over_the_cap_is_not_read_at_all() -> None:
    messages = [{"type": "http.request", "body": b" " * 600, "more_body": True}]
    limits = _limits()
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be reached")

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/jobs",
        "headers": [(b"content-length", b"2147483648")],
    }
    asyncio.run(BodyGuard(app, limits)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert len(messages) == 1  # not one byte of it was read


def test_a_body_within_limits_reaches_the_app_unchanged() -> None:
    body = b'{"a": [1, 2, {"b": "[[["}]}'
    sent = _run_guard(_limits(), [{"type": "http.request", "body": body, "more_body": False}])
    assert sent[0]["status"] == 200 and sent[1]["body"] == body


def test_a_streamed_route_passes_through_unbuffered() -> None:
    limits = _limits(route_body=lambda method, path: RouteBody(cap=10_000, streamed=True))
    chunks = [
        {"type": "http.request", "body": b"x" * 900, "more_body": True},
        {"type": "http.request", "body": b"y" * 900, "more_body": False},
    ]
    sent = _run_guard(limits, chunks)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"x" * 900 + b"y" * 900
