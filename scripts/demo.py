"""`make demo`: one real job through the marketplace on this machine.

A coordinator starts on SQLite; a developer signs in with a new wallet and submits a NumPy
matrix-multiply job; with no provider online the job waits in the queue and says why; the
provider daemon starts (`gpumarket provider run`: NVML inventory, GPUs when there are any, else
CPU), takes the job and runs it in a locked-down Docker container; the developer follows the
log live, downloads the outputs and sees the job settle when the challenge window closes.
Exits 0 and leaves nothing running. Settlement is still off-chain accounting (the escrow
contracts are a later issue).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
from eth_account import Account

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from gpumarket.protocol import JobSpec, JobState, Role  # noqa: E402
from gpumarket.sdk import AdminClient, Client, register_wallet  # noqa: E402

WORK = ROOT / ".demo"
IMAGE = "gpumarket-test/python:1"  # built locally by scripts/build-test-images.sh
MATMUL = """
import json, time
import numpy as np
n = 1024
a = np.random.default_rng(1).random((n, n), dtype=np.float32)
b = np.random.default_rng(2).random((n, n), dtype=np.float32)
best = 0.0
for attempt in range(1, 6):
    start = time.perf_counter()
    c = a @ b
    seconds = time.perf_counter() - start
    gflops = 2 * n ** 3 / seconds / 1e9
    best = max(best, gflops)
    print(f"round {attempt}: {n}x{n} matmul in {seconds * 1000:.1f} ms = {gflops:.1f} GFLOPS",
          flush=True)
    time.sleep(0.3)
result = {"n": n, "best_gflops": round(best, 2), "checksum": float(c.sum())}
json.dump(result, open("/outputs/result.json", "w"), indent=2)
print("wrote /outputs/result.json")
"""
ADMIN_TOKEN = "demo-admin-token"
CHALLENGE_WINDOW = 3


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_coordinator(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GPUMARKET_ADMIN_TOKEN": ADMIN_TOKEN,
        "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.5",
    }
    log = (WORK / "coordinator.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpumarket.cli",
            "coordinator",
            "serve",
            "--port",
            str(port),
            "--db-url",
            f"sqlite:///{WORK / 'coordinator.db'}",
            "--data-dir",
            str(WORK / "data"),
            "--challenge-window",
            str(CHALLENGE_WINDOW),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        if process.poll() is not None:
            raise SystemExit(f"coordinator failed; see {WORK / 'coordinator.log'}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("coordinator did not start in 15 s")


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    step(f"starting the coordinator on SQLite at {url} (API docs at {url}/docs)")
    coordinator = start_coordinator(port)
    try:
        run(url)
    finally:
        coordinator.send_signal(signal.SIGTERM)
        coordinator.wait(10)
    step("done: the coordinator is stopped; its database and outputs are under .demo/")


def start_provider(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GPUMARKET_WALLET_PASSWORD": "demo"}
    log = (WORK / "provider.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpumarket.cli",
            "provider",
            "run",
            "--coordinator",
            url,
            "--wallet",
            str(WORK / "provider-wallet.json"),
            "--work-dir",
            str(WORK / "provider"),
            "--cpu-price",
            "0.40",
            "--price",
            "RTX4090=0.45",
            "--price",
            "A100=1.20",
            "--price",
            "H100=2.20",
            "--benchmark-image",
            IMAGE,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def run(url: str) -> None:
    step("developer: sign the coordinator's challenge with a new wallet to get an API key")
    wallet = Account.create()
    credential = register_wallet(url, wallet, Role.DEVELOPER)
    print(f"wallet {wallet.address} -> account {credential.account_id}")
    dev = Client(url, credential.api_key)

    step(f"developer: submit a NumPy matrix-multiply job ({IMAGE}, CPU, at most 0.50/hour)")
    spec = JobSpec.model_validate(
        {
            "name": "matmul-demo",
            "image": IMAGE,
            "command": ["python3", "-c", MATMUL],
            "resources": {"cpu": 1, "memory": "1GB"},
            "max_price_per_hour": "0.50",
            "max_duration_seconds": 300,
        }
    )
    job = dev.submit(spec)
    print(f"job {job.id}: {job.state.value}")
    shown = dev.get(job.id)
    assert shown.why_no_match is not None
    print(
        f"why no match: {shown.why_no_match.providers_considered} providers registered, "
        "so nothing can take it yet"
    )

    step("provider: `gpumarket provider run` inventories this host and offers it")
    provider = start_provider(url)
    try:
        deadline = time.monotonic() + 60
        while (current := dev.get(job.id, explain=False)).state is JobState.QUEUED:
            if provider.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the provider did not take the job; see {WORK}/provider.log")
            time.sleep(0.2)
        print(
            f"job {job.id}: {current.state.value} on {current.provider_id} at "
            f"{current.price_per_hour}/h"
        )

        step("developer: the log, followed live from the container")
        for line in dev.follow_logs(job.id):
            print(f"  [{line.stream}] {line.data}", end="")

        step("developer: download and unpack the outputs")
        archive = dev.download_outputs(job.id, WORK / "outputs.tar.gz")
        with tarfile.open(archive) as tar:
            member = tar.extractfile("result.json")
            assert member is not None
            print(member.read().decode())

        step(f"waiting out the {CHALLENGE_WINDOW}s challenge window")
        deadline = time.monotonic() + 30
        while (current := dev.get(job.id)).state is not JobState.SETTLED:
            if time.monotonic() > deadline:
                raise SystemExit(f"job did not settle: {current.state.value}")
            time.sleep(0.5)
        for event in dev.events(job.id):
            print(f"  {event.at:%H:%M:%S.%f} {event.to_state.value:<10} {event.reason}")

        step("receipt (off-chain accounting; the on-chain escrow plugs into the same seam)")
        admin = AdminClient(url, ADMIN_TOKEN)
        provider_view = admin.providers()[0]
        print(f"  used       {current.usage_seconds:.3f} s at {current.price_per_hour}/h")
        print(f"  paid       {current.cost}")
        print(f"  fee        {current.fee}")
        print(f"  provider   earned {provider_view['earned']}")
        stats = admin.stats()
        print(
            f"  marketplace: {stats['jobs_by_state']['SETTLED']} settled, "
            f"revenue {stats['revenue_micros'] / 1e6:.6f}, fees {stats['fees_micros'] / 1e6:.6f}"
        )
    finally:
        provider.send_signal(signal.SIGTERM)
        provider.wait(60)


if __name__ == "__main__":
    main()
