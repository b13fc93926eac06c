"""``Client.wait``: a script blocks until a job's run is over, against a real coordinator and
provider daemon; a state the job can no longer reach and a timeout are errors of their own."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gpumarket.errors import Conflict, WaitTimedOut
from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.integration.provider.conftest import cpu_job

pytestmark = pytest.mark.integration


def test_wait_returns_when_the_run_is_over(
    developer: Client, start_daemon: Callable[..., ProviderDaemon]
) -> None:
    start_daemon()
    job = developer.submit(cpu_job(["sh", "-c", "sleep 1; echo done"]))
    finished = developer.wait(job.id, timeout=60)
    assert finished.state is JobState.COMMITTED and finished.exit_code == 0

    started = time.monotonic()
    with pytest.raises(WaitTimedOut, match="is still COMMITTED after 1 s"):
        developer.wait(job.id, [JobState.SETTLED], timeout=1)  # the window is an hour
    assert time.monotonic() - started < 3


def test_waiting_for_a_state_a_job_can_no_longer_reach(developer: Client) -> None:
    job = developer.submit(cpu_job(["true"], resources={"cpu": 64, "memory": "128MB"}))
    developer.cancel(job.id)
    assert developer.wait(job.id, timeout=5).state is JobState.CANCELLED  # the run is over
    with pytest.raises(Conflict, match="ended CANCELLED and will never be COMMITTED"):
        developer.wait(job.id, [JobState.COMMITTED])
