"""Client.wait rides out a coordinator restart, and still gives up on one that stays away."""

from __future__ import annotations

import httpx
import pytest

from gpumarket.errors import TransportError
from gpumarket.protocol import JobState
from gpumarket.sdk import Client
from tests.unit.sdk.test_follow_logs import job


def test_wait_looks_again_after_the_coordinator_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gpumarket.sdk.client.time.sleep", lambda seconds: None)
    answers = iter(
        [
            httpx.Response(200, json=job("RUNNING")),
            httpx.ConnectError("refused"),  # restarting
            httpx.ConnectError("refused"),
            httpx.Response(200, json=job("COMMITTED")),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        reply = next(answers)
        if isinstance(reply, Exception):
            raise reply
        return reply

    with Client("http://coordinator", "key", transport=httpx.MockTransport(answer)) as sdk:
        assert sdk.wait("job_1").state is JobState.COMMITTED


def test_wait_gives_up_on_a_coordinator_that_stays_away(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("gpumarket.sdk.client.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("gpumarket.sdk.client.time.sleep", lambda seconds: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with (
        Client("http://coordinator", "key", transport=httpx.MockTransport(refuse)) as sdk,
        pytest.raises(TransportError, match="cannot reach the coordinator"),
    ):
        sdk.wait("job_1")
