"""A provider that runs one job at a time works through a queue of them: a job that arrives
while it is full is given back as busy, offered to it again, and never barred from it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.integration.provider.conftest import SETTLED_ENOUGH, cpu_job, log_text, wait_for

pytestmark = pytest.mark.integration
Start = Callable[..., ProviderDaemon]


def test_a_one_job_provider_runs_a_queue_of_jobs_in_turn(
    start_daemon: Start, developer: Client
) -> None:
    start_daemon(max_concurrent_jobs=1)
    jobs = [
        developer.submit(cpu_job(["sh", "-c", f"sleep 1; echo job {n}"], queue_timeout_seconds=300))
        for n in range(5)
    ]
    done = [wait_for(developer, job.id, SETTLED_ENOUGH, timeout=120) for job in jobs]
    assert [job.state for job in done] == [JobState.COMMITTED] * 5
    assert [log_text(developer, job.id, "stdout") for job in done] == [
        f"job {n}\n" for n in range(5)
    ]
    assert all(job.attempts == 1 for job in done)  # a busy give-back is not an attempt
