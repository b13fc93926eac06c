"""Client.wait rides out a coordinator restart, and still gives up on one that stays away."""

from __future__ import annotations

import httpx
import pytest

from gpumarket.errors import Unreachable
from gpumarket.protocol import JobState
from gpumarket.sdk import Client
from tests.unit.sdk.conftest import Replay, job


def test_wait_looks_again_after_the_coordinator_comes_back(
    replay: Replay,
) -> None:
    sdk, _ = replay(
        [
            httpx.Response(200, json=job("RUNNING")),
            httpx.ConnectError("refused"),  # restarting
            httpx.ConnectError("refused"),
            httpx.Response(200, json=job("COMMITTED")),
        ]
    )
    assert sdk.wait("job_1").state is JobState.COMMITTED


def test_wait_gives_up_on_a_coordinator_that_stays_away(unreachable: Client) -> None:
    with pytest.raises(Unreachable, match="cannot reach the coordinator"):
        unreachable.wait("job_1")
