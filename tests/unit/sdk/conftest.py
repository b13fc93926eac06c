"""A coordinator played back for the SDK's resuming calls: recorded answers (or connection
errors) in order, no real sleeping, and one that never answers with a clock that runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from gpumarket.sdk import Client

Answer = httpx.Response | Exception
Replay = Callable[[list[Answer]], tuple[Client, list[str]]]


def job(state: str) -> dict[str, object]:
    """A job view in ``state``, as the coordinator sends it."""
    now = datetime.now(UTC).isoformat()
    return {
        "id": "job_1",
        "state": state,
        "spec": {"image": "busybox", "max_price_per_hour": "1"},
        "owner": "dev",
        "created_at": now,
        "updated_at": now,
    }


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    """A client of a coordinator that gives ``answers`` in order (an exception is raised as
    the transport's), and the list where each request's ``after`` ("-" when it has none) is
    recorded; the SDK's waits between attempts take no time."""
    monkeypatch.setattr("gpumarket.sdk.retry.pause", lambda seconds: None)
    made: list[Client] = []

    def make(answers: list[Answer]) -> tuple[Client, list[str]]:
        queue = iter(answers)
        asked: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            asked.append(request.url.params.get("after", "-"))
            reply = next(queue)
            if isinstance(reply, Exception):
                raise reply
            return reply

        client = Client("http://coordinator", "key", transport=httpx.MockTransport(answer))
        made.append(client)
        return client, asked

    yield make
    for client in made:
        client.close()


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """A client of a coordinator that refuses every connection, each attempt ten seconds after
    the last (and no real sleeping)."""
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("gpumarket.sdk.client.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("gpumarket.sdk.retry.pause", lambda seconds: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with Client("http://coordinator", "key", transport=httpx.MockTransport(refuse)) as client:
        yield client
