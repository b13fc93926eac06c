"""`make demo`: one real job through the marketplace on this machine, paid on a local chain.

An anvil devnet starts with the escrow contracts deployed; a coordinator starts on SQLite and
settles on it. A developer signs in with a new wallet, deposits test dollars and submits a NumPy
matrix-multiply job, signing its order (the escrow opens on-chain). The provider daemon starts
(`gpumarket provider run`: NVML inventory, GPUs when there are any, else CPU) with a staked
wallet, takes the job and runs it in a locked-down Docker container; the developer follows the
log live and downloads the outputs; the daemon's signed claim is committed on-chain; the devnet
jumps past the challenge window; the coordinator finalizes; the receipt lists every transfer
with its transaction. Exits 0 and leaves nothing running.
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


from gpumarket.keystore import create_wallet  # noqa: E402
from gpumarket.protocol import JobSpec, JobState, Role  # noqa: E402
from gpumarket.sdk import AdminClient, Client, register_wallet  # noqa: E402
from gpumarket.settlement.deploy import write_deployment  # noqa: E402
from gpumarket.settlement.devnet import Devnet  # noqa: E402
from gpumarket.settlement.wallet import MarketWallet  # noqa: E402

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
USD = 10**6


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_coordinator(port: int, net: Devnet) -> subprocess.Popen[bytes]:
    deployment = WORK / "devnet.json"
    write_deployment(net.deployment, deployment, net.rpc_url)
    env = {
        **os.environ,
        "GPUMARKET_ADMIN_TOKEN": ADMIN_TOKEN,
        "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.5",
        "GPUMARKET_CHAIN_RPC_URL": net.rpc_url,
        "GPUMARKET_CHAIN_DEPLOYMENT": str(deployment),
        "GPUMARKET_CHAIN_KEY": "0x" + bytes(net.accounts[0].key).hex(),
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
    step("starting a local anvil devnet and deploying the market and a test stablecoin")
    with Devnet.start() as net:
        print(f"chain {net.deployment.chain_id} at {net.rpc_url}")
        print(f"market {net.deployment.market}, token {net.deployment.token}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        step(f"starting the coordinator on SQLite at {url}, settling on the devnet")
        coordinator = start_coordinator(port, net)
        try:
            run(url, net)
        finally:
            coordinator.send_signal(signal.SIGTERM)
            coordinator.wait(10)
    step("done: the devnet and the coordinator are stopped; the records are under .demo/")


def start_provider(url: str) -> subprocess.Popen[bytes]:
    """The daemon, with the wallet the demo staked from."""
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
            "3.60",
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


def run(url: str, net: Devnet) -> None:
    chain = Client(url).chain_info()
    assert chain is not None
    step("developer: a new wallet, funded with test dollars, signs in and deposits 20")
    wallet = Account.create()
    net.fund(wallet.address, 100 * USD)
    credential = register_wallet(url, wallet, Role.DEVELOPER)
    print(f"wallet {wallet.address} -> account {credential.account_id}")
    dev_market = MarketWallet(chain, wallet)
    print(f"deposit tx {dev_market.deposit(20 * USD)}")
    dev = Client(url, credential.api_key)

    step(
        "provider: a wallet of its own, staked with 150 (each result locks max(1, 20 x its "
        "amount) until paid)"
    )
    provider_account = create_wallet(WORK / "provider-wallet.json", "demo")
    net.fund(provider_account.address, 200 * USD)
    prov_market = MarketWallet(chain, provider_account)
    print(f"wallet {provider_account.address}, stake tx {prov_market.stake(150 * USD)}")

    step(f"developer: submit a NumPy matrix-multiply job ({IMAGE}, CPU, at most 4.00/hour)")
    spec = JobSpec.model_validate(
        {
            "name": "matmul-demo",
            "image": IMAGE,
            "command": ["python3", "-c", MATMUL],
            "resources": {"cpu": 1, "memory": "1GB"},
            "max_price_per_hour": "4.00",
            "max_duration_seconds": 300,
        }
    )
    job = dev.submit(spec, wallet=wallet)
    assert job.state is JobState.QUEUED, job.state
    print(
        f"job {job.id}: signed an order for at most {job.spec.max_price_per_hour}/h x 300 s; "
        f"escrow opened in tx {job.chain[0].tx_hash}"
    )
    shown = dev.get(job.id)
    assert shown.why_no_match is not None
    print(
        f"job {job.id}: {shown.state.value}; why no match: "
        f"{shown.why_no_match.providers_considered} providers registered"
    )

    step("provider: `gpumarket provider run` inventories this host and offers it")
    provider = start_provider(url)
    try:
        deadline = time.monotonic() + 90
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

        deadline = time.monotonic() + 30
        while (current := dev.get(job.id, explain=False)).state is not JobState.COMMITTED:
            if time.monotonic() > deadline:
                raise SystemExit(f"job was not committed: {current.state.value}")
            time.sleep(0.2)
        step(
            f"the provider's signed claim of {current.cost} is committed on-chain; the "
            f"challenge window runs until {current.challenge_deadline:%Y-%m-%d %H:%M:%S} UTC "
            "(chain time)"
        )
        print(f"jumping the devnet {chain.window_seconds + 1} s ahead; the coordinator finalizes")
        net.time_travel(chain.window_seconds + 1)
        deadline = time.monotonic() + 30
        while (current := dev.get(job.id)).state is not JobState.SETTLED:
            if time.monotonic() > deadline:
                raise SystemExit(f"job did not settle: {current.state.value}")
            time.sleep(0.3)
        for event in dev.events(job.id):
            print(f"  {event.at:%H:%M:%S.%f} {event.to_state.value:<10} {event.reason}")

        step("receipt")
        receipt = current.receipt
        assert receipt is not None
        print(f"  used            {current.usage_seconds:.3f} s at {current.price_per_hour}/h")
        print(f"  charged         {current.cost}")
        print(f"  provider paid   {receipt.paid}")
        fee, burned = receipt.fee or 0, receipt.burned or 0
        print(f"  fee             {fee} (treasury {fee - burned}, burned {burned})")
        print(f"  refunded        {receipt.refund} to the developer's deposit")
        for tx in current.chain:
            print(f"  {tx.step:<9} tx {tx.tx_hash} block {tx.block} gas {tx.gas_used}")
        withdrawn = prov_market.withdraw_earnings()
        print(f"  provider withdrew its earnings to its wallet in tx {withdrawn}")
        market = MarketWallet(chain, net.accounts[0]).market
        print(
            f"  on-chain: developer deposit {dev_market.balances().deposit / USD:.6f}, "
            f"provider wallet {prov_market.balances().wallet / USD:.6f}, "
            f"treasury {market.view('treasuryBalance') / USD:.6f}, "
            f"to burn {market.view('burnBalance') / USD:.6f}"
        )
        admin = AdminClient(url, ADMIN_TOKEN)
        stats = admin.stats()
        print(
            f"  marketplace: {stats.jobs_by_state['SETTLED']} settled, "
            f"revenue {stats.revenue_micros / 1e6:.6f}, fees {stats.fees_micros / 1e6:.6f}"
        )
    finally:
        provider.send_signal(signal.SIGTERM)
        provider.wait(60)


if __name__ == "__main__":
    main()
