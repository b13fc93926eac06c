"""Provider daemon benchmarks on the real Docker engine with a real coordinator:

1. job start overhead: from an assignment in hand to its container running (GPU check, image
   check, inputs, container create, the "started" report to the coordinator, start), beside a
   bare create + start of the same local image measured in the same run;
2. log streaming: MB/s from a container printing as fast as it can to the coordinator, with
   every line checked to have arrived, in order;
3. the daemon's resident memory (a `gpumarket provider run` process) while 4 jobs run at once
   and stream their logs.

Run: ``python bench/provider.py`` (needs scripts/ensure-docker.sh and build-test-images.sh).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
from eth_account import Account

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.processes import CoordinatorProcess  # noqa: E402

from gpumarket.protocol import JobSpec, JobState, Role  # noqa: E402
from gpumarket.provider.config import ProviderConfig  # noqa: E402
from gpumarket.provider.daemon import ProviderDaemon  # noqa: E402
from gpumarket.provider.logship import LogShipper  # noqa: E402
from gpumarket.provider.runner import JobRunner  # noqa: E402
from gpumarket.sdk import Client, register_wallet  # noqa: E402

IMAGE = "gpumarket-test/busybox:1"
FAST = {
    "GPUMARKET_HEARTBEAT_INTERVAL_SECONDS": "1",
    "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.2",
    "GPUMARKET_MAX_LOG_BYTES_PER_JOB": str(256 * 1024 * 1024),
}


def spec(command: list[str], **extra: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "image": IMAGE,
            "command": command,
            "max_price_per_hour": "1",
            "max_duration_seconds": 600,
            "resources": {"cpu": 0.5, "memory": "256MB"},
            **extra,
        }
    )


def wait_running(container: object) -> None:
    while True:
        container.reload()  # type: ignore[attr-defined]
        if container.status == "running":  # type: ignore[attr-defined]
            return
        time.sleep(0.002)


def start_overhead(coord: CoordinatorProcess, base: Path, rounds: int = 15) -> None:
    client = docker.from_env()
    config = ProviderConfig(
        coordinator_url=coord.url,
        work_dir=base / "start",
        cpu_price_per_hour="0.1",
        max_concurrent_jobs=64,
    )
    daemon = ProviderDaemon(config, Account.create())
    provider = daemon.connect()
    provider.heartbeat(daemon.heartbeat_body())
    dev = Client(coord.url, register_wallet(coord.url, Account.create(), Role.DEVELOPER).api_key)
    ours, bare = [], []
    for i in range(rounds):
        dev.submit(spec(["sleep", "30"]))
        assignments: list = []
        while not assignments:
            assignments = provider.poll(wait=5)
        assignment = assignments[0]
        runner = JobRunner(
            assignment, daemon.executor, provider, config, daemon.check_gpus, lambda _job: None
        )
        shipper = LogShipper(provider, assignment.job_id, 1 << 20, base / f"s{i}.json")
        begin = time.perf_counter()
        container = runner._start(shipper)  # what a runner does once it has the assignment
        assert container is not None
        wait_running(container)
        ours.append((time.perf_counter() - begin) * 1000)
        shipper.close(timeout=5)
        daemon.executor.remove(assignment.job_id)
        dev.cancel(assignment.job_id)

        begin = time.perf_counter()
        plain = client.containers.create(IMAGE, ["sleep", "30"])
        plain.start()
        wait_running(plain)
        bare.append((time.perf_counter() - begin) * 1000)
        plain.remove(force=True)
    overhead = [a - b for a, b in zip(ours, bare, strict=True)]
    print(f"\n1. job start ({rounds} rounds, busybox, CPU job)")
    print(f"   daemon path  median {statistics.median(ours):7.1f} ms")
    print(f"   bare create+start median {statistics.median(bare):7.1f} ms")
    print(
        f"   overhead     median {statistics.median(overhead):7.1f} ms "
        f"(p90 {sorted(overhead)[int(len(overhead) * 0.9)]:.1f} ms)"
    )


def log_streaming(coord: CoordinatorProcess, base: Path, lines: int = 2_000_000) -> None:
    config = ProviderConfig(
        coordinator_url=coord.url,
        work_dir=base / "logs",
        cpu_price_per_hour="0.1",
        max_log_bytes=256 * 1024 * 1024,
        poll_wait_seconds=2,
    )
    daemon = ProviderDaemon(config, Account.create())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    dev = Client(coord.url, register_wallet(coord.url, Account.create(), Role.DEVELOPER).api_key)
    job = dev.submit(spec(["seq", "1", str(lines)]))
    while dev.get(job.id, explain=False).state is not JobState.RUNNING:
        time.sleep(0.05)
    begin = time.perf_counter()
    while dev.get(job.id, explain=False).state is not JobState.COMMITTED:
        time.sleep(0.05)
    seconds = time.perf_counter() - begin
    received, after = [], -1
    while True:
        page = dev.logs(job.id, after=after, limit=10_000)
        if not page:
            break
        received += [line.data for line in page if line.stream == "stdout"]
        after = page[-1].seq
    text = "".join(received)
    expected = "".join(f"{i}\n" for i in range(1, lines + 1))
    daemon.stop()
    thread.join(30)
    megabytes = len(expected) / 1e6
    print(f"\n2. log streaming ({lines:,} lines, {megabytes:.1f} MB)")
    print(
        f"   {megabytes / seconds:.1f} MB/s from container start to the result on the "
        f"coordinator ({seconds:.1f} s); every line arrived in order: {text == expected}"
    )
    ceiling = engine_ceiling(["seq", "1", str(lines)])
    print(
        f"   the engine alone (a raw attach read, same log driver, nothing shipped): "
        f"{ceiling:.1f} MB/s"
    )


def engine_ceiling(command: list[str]) -> float:
    """MB/s of just reading a container's output off the engine, for comparison."""
    import docker.utils.socket

    client = docker.from_env()
    container = client.containers.create(
        IMAGE, command, log_config={"type": "local", "config": {"max-size": "20m"}}
    )
    sock = container.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0})
    begin = time.perf_counter()
    container.start()
    total = 0
    while data := docker.utils.socket.read(sock, 256 * 1024):
        total += len(data)
    seconds = time.perf_counter() - begin
    container.remove(force=True)
    return total / 1e6 / seconds


def daemon_memory(coord: CoordinatorProcess, base: Path, seconds: float = 20) -> None:
    work = base / "rss"
    config = base / "provider.toml"
    config.write_text(
        f'coordinator_url = "{coord.url}"\nwallet = "{base / "w.json"}"\n'
        f'work_dir = "{work}"\ncpu_price_per_hour = "0.1"\n'
        "max_concurrent_jobs = 4\nstop_grace_seconds = 1\n"
        "shutdown_grace_seconds = 1\npoll_wait_seconds = 2\n"
    )
    env = {**os.environ, "GPUMARKET_WALLET_PASSWORD": "bench"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpumarket.cli",
            "provider",
            "run",
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    dev = Client(coord.url, register_wallet(coord.url, Account.create(), Role.DEVELOPER).api_key)
    script = (
        f"end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ]; "
        "do seq 1 20000; done"
    )
    jobs = [dev.submit(spec(["sh", "-c", script])) for _ in range(4)]
    peak = 0
    deadline = time.monotonic() + seconds + 30
    running_seen = 0
    while time.monotonic() < deadline:
        states = [dev.get(j.id, explain=False).state for j in jobs]
        running_seen = max(running_seen, sum(s is JobState.RUNNING for s in states))
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        peak = max(peak, rss)
        if all(s is JobState.COMMITTED for s in states):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    shipped = sum(len(dev.logs(j.id, limit=1)) for j in jobs)
    print(f"\n3. daemon memory with 4 jobs streaming logs for {seconds:.0f} s")
    print(
        f"   peak RSS {peak / 1024:.1f} MB; jobs running at once: {running_seen}; "
        f"all committed: {all(dev.get(j.id).state is JobState.COMMITTED for j in jobs)}; "
        f"logs received: {shipped == 4}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with CoordinatorProcess.start(
            f"sqlite:///{base / 'c.db'}", base / "data", "bench", extra_env=FAST
        ) as coord:
            start_overhead(coord, base)
            log_streaming(coord, base)
            daemon_memory(coord, base)


if __name__ == "__main__":
    main()
