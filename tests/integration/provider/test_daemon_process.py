"""The daemon as users run it (`gpumarket provider run`), killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from gpumarket.protocol import JobState
from gpumarket.sdk import Client
from tests.integration.processes import CoordinatorProcess
from tests.integration.provider.conftest import (
    SETTLED_ENOUGH,
    cpu_job,
    log_text,
    run_labels_toml,
    wait_for,
)

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, coordinator: CoordinatorProcess, **extra: str) -> Path:
    """A provider.toml for this test; ``extra`` adds keys or overrides these (TOML values)."""
    keys = {
        "coordinator_url": f'"{coordinator.url}"',
        "wallet": f'"{tmp_path / "wallet.json"}"',
        "work_dir": f'"{tmp_path / "work"}"',
        "cpu_price_per_hour": '"0.10"',
        "stop_grace_seconds": "1",
        "poll_wait_seconds": "2",
        "container_labels": run_labels_toml(),
        **extra,
    }
    path = tmp_path / "provider.toml"
    path.write_text("".join(f"{key} = {value}\n" for key, value in keys.items()))
    return path


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GPUMARKET_WALLET_PASSWORD": "test-password"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpumarket.cli",
                "provider",
                "run",
                "--config",
                str(config),
                "--log-level",
                "info",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def test_killed_daemon_reconciles_its_job_after_restart(
    coordinator: CoordinatorProcess, developer: Client, tmp_path: Path
) -> None:
    config = write_config(tmp_path, coordinator)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        job = developer.submit(
            cpu_job(["sh", "-c", "echo before; sleep 4; echo after; echo done > /outputs/result"])
        )
        wait_for(developer, job.id, {JobState.RUNNING})
        time.sleep(1)
        daemon.send_signal(signal.SIGKILL)  # no goodbye: the container keeps running
        daemon.wait(10)
        assert developer.get(job.id).state is JobState.RUNNING
        # the terms a restart reports (and on-chain claims) the job with
        assert (tmp_path / "work" / job.id / "assignment.json").is_file()
        left_over = tmp_path / "work" / "job_00000000deadbeef"  # a job that ended while down
        (left_over / "outputs").mkdir(parents=True)
        daemon = start_daemon(config, log)
        done = wait_for(developer, job.id, SETTLED_ENOUGH, timeout=60)
        assert not left_over.exists()
        assert done.state is JobState.COMMITTED and done.exit_code == 0, log.read_text()
        assert log_text(developer, job.id, "stdout") == "before\nafter\n", [
            (x.seq, x.stream, x.data) for x in developer.logs(job.id)
        ]
        archive = developer.download_outputs(job.id, tmp_path / "out.tar.gz")
        with tarfile.open(archive) as tar:
            result = tar.extractfile("result")
            assert result is not None and result.read() == b"done\n"
        assert "re-attaching to " + job.id in log.read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def test_sigterm_hands_unfinished_jobs_back(
    coordinator: CoordinatorProcess, developer: Client, tmp_path: Path
) -> None:
    config = write_config(tmp_path, coordinator, shutdown_grace_seconds="1")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    job = developer.submit(cpu_job(["sleep", "600"]))
    wait_for(developer, job.id, {JobState.RUNNING})
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0, log.read_text()
    back = wait_for(developer, job.id, {JobState.QUEUED, JobState.FAILED})
    assert back.state is JobState.QUEUED
    reasons = " ".join(e.reason for e in developer.events(job.id))
    assert "shut down before the job finished" in reasons


def sigterm_once_logged(config: Path, log: Path, line: str, settle: float = 0) -> str:
    """Start the daemon, send SIGTERM once ``line`` is in its log (and ``settle`` seconds
    more), and return its log once it has exited; fails if it took more than 10 s."""
    daemon = start_daemon(config, log)
    try:
        deadline = time.monotonic() + 60
        while line not in log.read_text():
            assert time.monotonic() < deadline and daemon.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(settle)
        asked = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()
        took = time.monotonic() - asked
        assert took < 10, f"took {took:.1f}s to stop after SIGTERM:\n{log.read_text()}"
        return log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()


def test_sigterm_stops_an_idle_daemon_without_waiting_out_its_long_poll(
    coordinator: CoordinatorProcess, tmp_path: Path
) -> None:
    """Ctrl-C on an idle daemon: its heartbeat says it is draining, which ends the 25 s
    long-poll it is in, so it exits in about a second, not at the poll's end."""
    config = write_config(tmp_path, coordinator, poll_wait_seconds="25")
    # two seconds into its first long-poll
    shown = sigterm_once_logged(config, tmp_path / "daemon.log", "registered as", settle=2)
    assert "stopping: no new jobs; 0 running job(s)" in shown


def test_sigterm_stops_a_daemon_still_trying_to_reach_its_coordinator(
    coordinator: CoordinatorProcess, tmp_path: Path
) -> None:
    """A daemon whose coordinator is down retries for ten minutes; Ctrl-C ends that at once."""
    from tests.integration.processes import free_port

    nobody = f'"http://127.0.0.1:{free_port()}"'  # nothing listens there
    config = write_config(tmp_path, coordinator, coordinator_url=nobody)
    log = tmp_path / "daemon.log"
    shown = sigterm_once_logged(config, log, "connect to the coordinator failed")
    assert "stopped before reaching the coordinator" in shown
