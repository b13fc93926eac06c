"""Following a log resumes where it broke off, and gives up only after resume_seconds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from gpumarket.errors import TransportError
from gpumarket.sdk import Client


def chunk(seq: int) -> bytes:
    line = {"seq": seq, "stream": "stdout", "data": f"line {seq}\n", "at": datetime.now(UTC)}
    return (json.dumps(line, default=str) + "\n").encode()


def job(state: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": "job_1",
        "state": state,
        "spec": {"image": "busybox", "max_price_per_hour": "1"},
        "owner": "dev",
        "created_at": now,
        "updated_at": now,
    }


def test_a_stream_that_ends_early_or_breaks_is_resumed_after_its_last_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gpumarket.sdk.client.time.sleep", lambda seconds: None)
    asked: list[str] = []
    answers = iter(
        [
            httpx.Response(200, content=chunk(0) + chunk(1)),  # ends: a coordinator stopping
            httpx.Response(200, json=job("RUNNING")),  # not finished: resume after 1
            httpx.ConnectError("refused"),  # restarting
            httpx.Response(502),  # its proxy, still waiting for it
            httpx.Response(200, content=chunk(2)),  # ends: stopping again
            httpx.Response(200, json=job("COMMITTED")),  # finished meanwhile:
            httpx.Response(200, json=[json.loads(chunk(3))]),  # its last line, read at once
            httpx.Response(200, json=[]),  # and nothing after it
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("after", "-"))
        reply = next(answers)
        if isinstance(reply, Exception):
            raise reply
        return reply

    with Client("http://coordinator", "key", transport=httpx.MockTransport(answer)) as sdk:
        seen = [line.seq for line in sdk.follow_logs("job_1")]
    assert seen == [0, 1, 2, 3]
    assert asked == ["-1", "-", "1", "1", "1", "-", "2", "3"]  # the gets have no "after"


def test_a_coordinator_that_stays_away_ends_the_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 10))  # every attempt ten seconds later
    monkeypatch.setattr("gpumarket.sdk.client.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("gpumarket.sdk.client.time.sleep", lambda seconds: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with (
        Client("http://coordinator", "key", transport=httpx.MockTransport(refuse)) as sdk,
        pytest.raises(TransportError, match="unreachable for 60s"),
    ):
        list(sdk.follow_logs("job_1"))
