"""Real containers on the real Docker engine, run by the provider daemon for jobs submitted to
a real coordinator over HTTP: results arrive intact and the sandbox holds."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.integration.provider.conftest import (
    PYTHON,
    SETTLED_ENOUGH,
    cpu_job,
    log_text,
    wait_for,
)

pytestmark = pytest.mark.integration
Start = Callable[..., ProviderDaemon]


def outputs_of(developer: Client, job_id: str, tmp_path: Path) -> dict[str, bytes]:
    archive = developer.download_outputs(job_id, tmp_path / f"{job_id}.tar.gz")
    files: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def test_logs_and_outputs_arrive_intact(
    start_daemon: Start, developer: Client, tmp_path: Path
) -> None:
    start_daemon()
    script = (
        "for i in $(seq 1 200); do echo line $i; done; echo oops >&2; "
        "mkdir -p /outputs/sub; echo 42 > /outputs/sub/answer; "
        "cat /inputs/data.txt > /outputs/copy; head -c 100000 /dev/urandom > /outputs/rnd"
    )
    job = developer.submit(
        cpu_job(
            ["sh", "-c", script], inputs=[{"path": "data.txt", "content": "from the developer"}]
        )
    )
    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert done.state is JobState.COMMITTED and done.exit_code == 0
    stdout = log_text(developer, job.id, "stdout")
    assert stdout == "".join(f"line {i}\n" for i in range(1, 201))
    assert log_text(developer, job.id, "stderr") == "oops\n"
    files = outputs_of(developer, job.id, tmp_path)
    assert files["sub/answer"] == b"42\n" and files["copy"] == b"from the developer"
    assert len(files["rnd"]) == 100_000
    assert done.cost is not None and done.usage_seconds is not None


def test_no_network_and_read_only_root_by_default(start_daemon: Start, developer: Client) -> None:
    start_daemon()
    script = (
        "ls /sys/class/net; touch /etc/evil || echo ROOT-IS-READ-ONLY; "
        "touch /tmp/ok && echo TMP-WRITABLE; cat /proc/self/status | grep CapEff"
    )
    job = developer.submit(cpu_job(["sh", "-c", script]))
    wait_for(developer, job.id, SETTLED_ENOUGH)
    out = log_text(developer, job.id)
    stdout = log_text(developer, job.id, "stdout")
    assert stdout.split()[0] == "lo" and "eth0" not in out  # only loopback: no network at all
    assert "ROOT-IS-READ-ONLY" in out and "Read-only file system" in out
    assert "TMP-WRITABLE" in out
    assert "CapEff:\t0000000000000000" in out  # every capability dropped


def test_network_is_only_for_jobs_that_ask_on_providers_that_allow(
    start_daemon: Start, developer: Client, tmp_path: Path
) -> None:
    start_daemon()  # allow_network defaults to False
    wants_network = developer.submit(cpu_job(["ls", "/sys/class/net"], network=True))
    offline = developer.submit(cpu_job(["ls", "/sys/class/net"]))
    assert wait_for(developer, offline.id, SETTLED_ENOUGH).exit_code == 0
    assert log_text(developer, offline.id, "stdout").split() == ["lo"]
    waiting = developer.get(wants_network.id)
    assert waiting.state is JobState.QUEUED and waiting.why_no_match is not None
    assert waiting.why_no_match.summary.get("network") == 1

    start_daemon(allow_network=True, work_dir=tmp_path / "second")  # a provider that allows it
    assert wait_for(developer, wants_network.id, SETTLED_ENOUGH).exit_code == 0
    assert "eth0" in log_text(developer, wants_network.id, "stdout").split()


def test_memory_hog_is_killed_at_its_limit(start_daemon: Start, developer: Client) -> None:
    start_daemon()
    job = developer.submit(
        cpu_job(
            ["python3", "-c", "x = bytearray(400 * 1024 * 1024); print('survived')"],
            image=PYTHON,
            resources={"cpu": 1, "memory": "128MB"},
        )
    )
    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    out = log_text(developer, job.id)
    assert done.exit_code == 137 and "survived" not in out
    assert "went over its memory limit of 128MB" in out


def test_fork_bomb_hits_the_pids_limit_and_the_daemon_keeps_serving(
    start_daemon: Start, developer: Client
) -> None:
    start_daemon()
    script = "i=0; while [ $i -lt 1500 ]; do sleep 20 & i=$((i+1)); done; echo spawned all; wait"
    bomb = developer.submit(cpu_job(["sh", "-c", script], max_duration_seconds=30))
    done = wait_for(developer, bomb.id, SETTLED_ENOUGH)
    out = log_text(developer, bomb.id)
    assert "can't fork" in out and "spawned all" not in out  # stopped at the pids limit
    assert done.state is JobState.COMMITTED and done.exit_code != 0
    after = developer.submit(cpu_job(["echo", "still here"]))
    assert wait_for(developer, after.id, SETTLED_ENOUGH).exit_code == 0
    assert log_text(developer, after.id, "stdout") == "still here\n"


def test_time_limit_stops_the_job(start_daemon: Start, developer: Client) -> None:
    start_daemon()
    started = time.monotonic()
    job = developer.submit(cpu_job(["sleep", "600"], max_duration_seconds=2))
    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert time.monotonic() - started < 30
    # the command itself gets the SIGTERM (an init is PID 1), so it stops at once, not after
    # the 10 s grace period and a SIGKILL
    assert done.exit_code == 143
    assert done.usage_seconds is not None and done.usage_seconds < 8
    assert "over max_duration_seconds=2" in log_text(developer, job.id)


def test_log_flood_is_capped(start_daemon: Start, developer: Client) -> None:
    start_daemon(max_log_bytes=64 * 1024)
    job = developer.submit(cpu_job(["sh", "-c", "yes flooding-the-logs | head -c 5000000"]))
    wait_for(developer, job.id, SETTLED_ENOUGH)
    out = log_text(developer, job.id, "stdout")
    assert len(out.encode()) <= 64 * 1024
    assert "log cap of 65536 bytes" in log_text(developer, job.id, "system")


def test_outputs_over_the_cap_are_refused(start_daemon: Start, developer: Client) -> None:
    start_daemon(max_output_bytes=1024 * 1024)
    job = developer.submit(cpu_job(["sh", "-c", "head -c 3000000 /dev/zero > /outputs/big"]))
    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert done.state is JobState.COMMITTED and not done.outputs_available
    assert "outputs refused" in log_text(developer, job.id, "system")


def test_links_out_of_outputs_are_not_followed(
    start_daemon: Start, developer: Client, tmp_path: Path
) -> None:
    start_daemon()
    job = developer.submit(
        cpu_job(
            [
                "sh",
                "-c",
                "ln -s /etc /outputs/etc; "
                "ln -s /etc/passwd /outputs/passwd; "
                "echo mine > /outputs/mine",
            ]
        )
    )
    wait_for(developer, job.id, SETTLED_ENOUGH)
    assert outputs_of(developer, job.id, tmp_path) == {"mine": b"mine\n"}
    system = log_text(developer, job.id, "system")
    assert "left out etc" in system and "left out passwd" in system


def test_cancel_stops_the_container(
    start_daemon: Start, developer: Client, docker_client: docker.DockerClient
) -> None:
    start_daemon()
    job = developer.submit(cpu_job(["sleep", "600"]))
    wait_for(developer, job.id, {JobState.RUNNING})
    developer.cancel(job.id)
    deadline = time.monotonic() + 20
    while docker_client.containers.list(filters={"label": f"gpumarket.job={job.id}"}):
        assert time.monotonic() < deadline, "container still running after cancel"
        time.sleep(0.2)
    assert developer.get(job.id).state is JobState.CANCELLED


def test_several_jobs_run_at_once(start_daemon: Start, developer: Client) -> None:
    start_daemon(max_concurrent_jobs=3)
    jobs = [
        developer.submit(cpu_job(["sleep", "3"], resources={"cpu": 0.5, "memory": "64MB"}))
        for _ in range(3)
    ]
    done = [wait_for(developer, job.id, SETTLED_ENOUGH) for job in jobs]
    assert all(job.exit_code == 0 for job in done)
    latest_start = max(job.started_at for job in done if job.started_at)
    earliest_end = min(job.finished_at for job in done if job.finished_at)
    assert latest_start < earliest_end  # all three were running at the same moment


def test_image_policy_and_unpullable_images_are_refused_clearly(
    start_daemon: Start, developer: Client
) -> None:
    # the missing image names a registry on loopback, so the failed pull stays on this machine
    start_daemon(allowed_images=["gpumarket-test/busybox", "127.0.0.1:5999/"])
    refused = developer.submit(cpu_job(["python3", "-V"], image=PYTHON))
    missing = developer.submit(cpu_job(["true"], image="127.0.0.1:5999/nothing/here:1"))
    failed = wait_for(developer, missing.id, {JobState.FAILED})
    assert "cannot pull image '127.0.0.1:5999/nothing/here:1'" in (failed.failure_reason or "")
    deadline = time.monotonic() + 30
    while not any("image policy" in e.reason for e in developer.events(refused.id)):
        assert time.monotonic() < deadline, developer.events(refused.id)
        time.sleep(0.2)


def test_a_command_the_image_cannot_run_fails_the_job_for_good(
    start_daemon: Start, developer: Client
) -> None:
    """Like `docker run` exiting 127/126: the developer's error, not the provider's, so the
    job fails at once with what to fix instead of going round every provider."""
    start_daemon()
    not_on_path = developer.submit(cpu_job(["python", "-V"], image=PYTHON))  # it has python3
    not_a_program = developer.submit(cpu_job(["/etc/passwd"], image=PYTHON))
    for job, problem in (
        (not_on_path, "'python' is not on the image's PATH"),
        (not_a_program, "'/etc/passwd' is not an executable file"),
    ):
        failed = wait_for(developer, job.id, {JobState.FAILED})
        assert f"the command cannot start in image '{PYTHON}': {problem}" in (
            failed.failure_reason or ""
        )
        assert not any("back in the queue" in e.reason for e in developer.events(job.id))
    fine = developer.submit(cpu_job(["python3", "-c", "print('still serving')"], image=PYTHON))
    assert wait_for(developer, fine.id, SETTLED_ENOUGH).exit_code == 0


def test_inputs_are_read_only_and_nothing_is_left_behind(
    start_daemon: Start, developer: Client, docker_client: docker.DockerClient
) -> None:
    daemon = start_daemon()
    job = developer.submit(
        cpu_job(
            ["sh", "-c", "cat /inputs/in.txt; echo x > /inputs/in.txt || echo INPUTS-READ-ONLY"],
            inputs=[{"path": "in.txt", "content": "given\n"}],
        )
    )
    wait_for(developer, job.id, SETTLED_ENOUGH)
    out = log_text(developer, job.id)
    assert "given" in out and "INPUTS-READ-ONLY" in out
    deadline = time.monotonic() + 10
    while docker_client.containers.list(all=True, filters={"label": f"gpumarket.job={job.id}"}):
        assert time.monotonic() < deadline, "container not removed"
        time.sleep(0.2)
    assert not (daemon.config.work_dir / job.id).exists()


def test_benchmark_at_start_is_advertised_and_ranks_the_offer(
    start_daemon: Start, developer: Client
) -> None:
    daemon = start_daemon(benchmark_image=PYTHON)
    deadline = time.monotonic() + 60
    while not developer.offers(gpu_model="CPU"):
        assert time.monotonic() < deadline, "no CPU offer appeared"
        time.sleep(0.2)
    (offer,) = developer.offers(gpu_model="CPU")
    assert daemon.cpu_tflops is not None and daemon.cpu_tflops > 0
    assert offer.tflops == pytest.approx(daemon.cpu_tflops)
