"""Following a log resumes where it broke off, and gives up only after resume_seconds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from gpumarket.errors import Unreachable
from gpumarket.sdk import Client
from tests.unit.sdk.conftest import Replay, job


def chunk(seq: int) -> bytes:
    line = {"seq": seq, "stream": "stdout", "data": f"line {seq}\n", "at": datetime.now(UTC)}
    return (json.dumps(line, default=str) + "\n").encode()


def test_a_stream_that_ends_early_or_breaks_is_resumed_after_its_last_line(
    replay: Replay,
) -> None:
    sdk, asked = replay(
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
    seen = [line.seq for line in sdk.follow_logs("job_1")]
    assert seen == [0, 1, 2, 3]
    assert asked == ["-1", "-", "1", "1", "1", "-", "2", "3"]  # the gets have no "after"


def test_a_coordinator_that_stays_away_ends_the_follow(unreachable: Client) -> None:
    with pytest.raises(Unreachable, match="unreachable for 60s"):
        list(unreachable.follow_logs("job_1"))
