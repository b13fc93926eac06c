"""A job's ``resources.disk`` holds on a real engine: a job writing past it (to /outputs, or to
/outputs and /tmp together) is killed and fails for good with a reason that says how to ask for
more (issue 12: a job with the default 10GB wrote 5 GB to /outputs before the output cap
refused it)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.integration.provider.conftest import SETTLED_ENOUGH, cpu_job, log_text, wait_for

pytestmark = pytest.mark.integration
Start = Callable[..., ProviderDaemon]

LIMIT = {"cpu": 1, "memory": "256MB", "disk": "20MB"}
REASON = "wrote more than the job's disk limit of 20MB ("


def assert_failed_over_its_disk(developer: Client, job_id: str, where: str) -> None:
    """Failed once and for good (not handed to another attempt), saying why in the job and
    its log."""
    done = wait_for(developer, job_id, SETTLED_ENOUGH)
    assert done.state is JobState.FAILED, done.failure_reason
    assert done.attempts == 1
    assert done.failure_reason is not None
    assert REASON in done.failure_reason  # the coordinator says: the job cannot run: ...
    assert f"MB in {where}" in done.failure_reason
    assert done.failure_reason.endswith("ask for more with resources.disk")
    assert f"killed: {REASON}" in log_text(developer, job_id, "system")


def test_a_job_that_keeps_writing_to_outputs_is_stopped_at_its_disk_limit(
    start_daemon: Start, developer: Client
) -> None:
    start_daemon()
    # 200 MB in 1 MB files, then idles: only the disk watch ends it before its time limit
    writer = (
        "i=0; while [ $i -lt 200 ]; do dd if=/dev/zero of=/outputs/part$i bs=1M count=1 "
        "2>/dev/null; i=$((i+1)); sleep 0.02; done; echo wrote it all; sleep 300"
    )
    job = developer.submit(cpu_job(["sh", "-c", writer], resources=LIMIT, max_duration_seconds=600))
    assert_failed_over_its_disk(developer, job.id, "/outputs")
    assert "wrote it all" not in log_text(developer, job.id, "stdout")


def test_a_job_that_fills_the_disk_and_exits_at_once_fails_too(
    start_daemon: Start, developer: Client
) -> None:
    start_daemon()
    job = developer.submit(
        cpu_job(
            ["sh", "-c", "dd if=/dev/zero of=/outputs/big bs=1M count=30 2>/dev/null"],
            resources=LIMIT,
        )
    )
    assert_failed_over_its_disk(developer, job.id, "/outputs")


@pytest.mark.skipif(os.geteuid() != 0, reason="/tmp is measured through /proc/PID/root (root)")
def test_outputs_and_tmp_count_together(start_daemon: Start, developer: Client) -> None:
    start_daemon()  # /tmp is a 16 MB tmpfs here: neither place alone goes past 20MB
    writer = (
        "dd if=/dev/zero of=/tmp/scratch bs=1M count=12 2>/dev/null; "
        "dd if=/dev/zero of=/outputs/result bs=1M count=12 2>/dev/null; "
        "echo wrote both; sleep 300"
    )
    job = developer.submit(cpu_job(["sh", "-c", writer], resources=LIMIT, max_duration_seconds=600))
    assert_failed_over_its_disk(developer, job.id, "/tmp")
