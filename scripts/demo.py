"""`make demo`: start a coordinator on SQLite and walk one job through the marketplace API.

Developer registers a wallet and submits a job; with no provider online the job waits in the
queue and explains why; a provider registers (examples/manual_provider.py) and gets the job;
the developer follows the log, downloads the outputs, and sees the job settle when the
challenge window closes. Exits 0 and leaves nothing running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
from eth_account import Account

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.manual_provider import serve_one_job  # noqa: E402

from gpumarket.protocol import JobSpec, JobState, Role  # noqa: E402
from gpumarket.sdk import AdminClient, Client, register_wallet  # noqa: E402

WORK = ROOT / ".demo"
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


def run(url: str) -> None:
    step("developer: sign the coordinator's challenge with a new wallet to get an API key")
    wallet = Account.create()
    credential = register_wallet(url, wallet, Role.DEVELOPER)
    print(f"wallet {wallet.address} -> account {credential.account_id}")
    dev = Client(url, credential.api_key)

    step("developer: submit a matrix-multiply job (CPU, at most 0.50/hour)")
    spec = JobSpec.model_validate(
        {
            "name": "matmul-demo",
            "image": "python:3.12-slim",
            "command": ["python", "-c", "matmul benchmark"],
            "env": {"MATRIX_SIZE": "96"},
            "resources": {"cpu": 1, "memory": "1GB"},
            "max_price_per_hour": "0.50",
            "max_duration_seconds": 600,
        }
    )
    job = dev.submit(spec)
    print(f"job {job.id}: {job.state.value}")
    shown = dev.get(job.id)
    assert shown.why_no_match is not None
    print(
        f"why no match: {shown.why_no_match.providers_considered} providers online "
        f"-> nothing can take it yet"
    )

    step("provider: a short script registers, offers CPU at 0.40/hour and takes the job")
    lines: list[str] = []
    follower = threading.Thread(
        target=lambda: lines.extend(line.data for line in dev.follow_logs(job.id)), daemon=True
    )
    provider = threading.Thread(target=serve_one_job, args=(url, WORK), daemon=True)
    provider.start()
    time.sleep(0.5)
    follower.start()
    provider.join(60)
    follower.join(30)

    step("developer: the log, followed live")
    for line in lines:
        print(f"  | {line}", end="")

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

    step("receipt (off-chain accounting; on-chain settlement plugs into the same seam)")
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


if __name__ == "__main__":
    main()
