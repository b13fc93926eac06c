"""A coordinator restarted while a job runs and a developer follows its log: SIGTERM does not
wait for the open log stream, the daemon carries on, and the SDK resumes the stream after its
last line, so the developer sees every line once."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpumarket.protocol import JobState, LogLine
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.integration.processes import CoordinatorProcess
from tests.integration.provider.conftest import FAST, SETTLED_ENOUGH, cpu_job, wait_for

pytestmark = pytest.mark.integration

LINES = 30


def test_a_log_follower_survives_a_coordinator_restart(
    coordinator: CoordinatorProcess,
    developer: Client,
    start_daemon: Callable[..., ProviderDaemon],
    tmp_path: Path,
) -> None:
    start_daemon()
    script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.3; done"
    job = developer.submit(cpu_job(["sh", "-c", script]))
    seen: list[LogLine] = []
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            seen.extend(developer.follow_logs(job.id))
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 60
    while sum(1 for x in seen if x.stream == "stdout") < 3:
        assert time.monotonic() < deadline and not failure, failure
        time.sleep(0.1)

    port = int(coordinator.url.rsplit(":", 1)[1])
    asked = time.monotonic()
    coordinator.stop()  # SIGTERM, with the log stream open
    took = time.monotonic() - asked
    # uvicorn re-raises the signal once it has shut down; SIGKILL would mean it hung
    assert coordinator.process.returncode == -signal.SIGTERM, coordinator.log_path.read_text()
    assert "Traceback" not in coordinator.log_path.read_text()  # the stream ended, not cut
    assert took < 5, f"SIGTERM took {took:.1f}s: it waited for the log stream"
    with CoordinatorProcess.start(
        sqlite_url(tmp_path), tmp_path / "coord", ADMIN_TOKEN, port=port, extra_env=FAST
    ) as restarted:
        follower.join(90)
        assert not follower.is_alive() and not failure, failure
        done = wait_for(developer, job.id, SETTLED_ENOUGH)
        assert done.state is JobState.COMMITTED, restarted.log_path.read_text()
    seqs = [x.seq for x in seen]
    assert seqs == sorted(set(seqs)), "a line was repeated or reordered"
    stdout = "".join(x.data for x in seen if x.stream == "stdout")
    assert stdout == "".join(f"line {i}\n" for i in range(1, LINES + 1))
