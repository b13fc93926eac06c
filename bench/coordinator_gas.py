"""Gas per job as the coordinator really spends it, idle and busy, on a chain with real blocks.

Run: ``python bench/coordinator_gas.py [--jobs 20] [--block-time 1]``. Starts anvil mining a
block every ``--block-time`` seconds, a coordinator process settling on it, a developer and a
provider (its claims signed as the daemon signs them; no containers run). First a few jobs go
through one at a time (an idle market: every open and commit is its own transaction), then
``--jobs`` jobs are paid at once and their results reported at once (a busy market: orders and
claims that arrive while one transaction waits for its block share the next ``openMany`` or
``commitMany``). Prints, for each, the gas per job of each step (each job's share, from its
on-chain steps), how many transactions carried them, and the time from pay to QUEUED.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ADMIN_TOKEN, sqlite_url  # noqa: E402
from tests.integration.processes import CoordinatorProcess  # noqa: E402

from gpumarket.protocol import (  # noqa: E402
    Heartbeat,
    HostResources,
    JobSpec,
    JobState,
    JobView,
    OfferAsk,
    ResultReport,
    Role,
)
from gpumarket.provider.claims import ClaimSigner  # noqa: E402
from gpumarket.sdk import Client, ProviderClient, register_wallet  # noqa: E402
from gpumarket.settlement.deploy import write_deployment  # noqa: E402
from gpumarket.settlement.devnet import Devnet  # noqa: E402
from gpumarket.settlement.wallet import MarketWallet  # noqa: E402

USD = 10**6
SPEC = JobSpec.model_validate(
    {
        "image": "busybox:latest",
        "command": ["true"],
        "max_price_per_hour": "36",
        "max_duration_seconds": 600,
        "resources": {"cpu": 1, "memory": "64MB"},
    }
)


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def run_round(
    net: Devnet,
    dev: Client,
    provider: ProviderClient,
    claims: ClaimSigner,
    jobs: int,
    at_once: bool,
) -> dict[str, Any]:
    """``jobs`` jobs from payment to SETTLED; each step all at once or one after another."""
    submitted = [dev.submit(SPEC) for _ in range(jobs)]
    pay_times: list[float] = []

    def pay(job: JobView) -> JobView:
        start = time.monotonic()
        paid = dev.pay(job, net.accounts[1], SPEC)
        pay_times.append(time.monotonic() - start)
        return paid

    def each(action: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        if not at_once:
            return [action(i) for i in items]
        with ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(action, items))

    each(pay, submitted)
    ids = {j.id for j in submitted}
    assignments: dict[str, Any] = {}

    def polled() -> bool:
        for a in provider.poll(wait=0):
            assignments[a.job_id] = a
        return ids <= set(assignments)

    try:
        wait_until("the assignments", polled)
    except SystemExit:
        stuck = dev.get(sorted(ids - set(assignments))[0])
        print(f"{stuck.id} stayed {stuck.state}: {stuck.why_no_match}", file=sys.stderr)
        raise
    for job_id in ids:
        provider.started(job_id)

    def report(job_id: str) -> JobView:
        claim = claims.claim(assignments[job_id], 0, None, 0.5)
        return provider.report_result(
            job_id, ResultReport(exit_code=0, usage_seconds=0.5, claim=claim)
        )

    each(report, sorted(ids))
    net.time_travel(3601)
    wait_until(
        "settlement", lambda: all(dev.get(i).state is JobState.SETTLED for i in ids), timeout=180
    )
    views = [dev.get(i) for i in ids]
    figures: dict[str, Any] = {"pay_to_queued_s": statistics.median(pay_times)}
    for step in ("open", "commit", "finalize"):
        done = [s for v in views for s in v.chain if s.step == step]
        figures[step] = sum(s.gas_used or 0 for s in done) / len(views)
        figures[f"{step}_txs"] = len({s.tx_hash for s in done})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--idle-jobs", type=int, default=3)
    parser.add_argument("--block-time", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Devnet.start(block_time=args.block_time) as net:
        folder = Path(tmp)
        deployment = folder / "deployment.json"
        write_deployment(net.deployment, deployment)
        env = {
            "GPUMARKET_CHAIN_RPC_URL": net.rpc_url,
            "GPUMARKET_CHAIN_DEPLOYMENT": str(deployment),
            "GPUMARKET_CHAIN_KEY": "0x" + bytes(net.accounts[0].key).hex(),
        }
        with CoordinatorProcess.start(
            sqlite_url(folder), folder / "data", ADMIN_TOKEN, extra_env=env, timeout=60
        ) as proc:
            dev_key = register_wallet(proc.url, net.accounts[1], Role.DEVELOPER).api_key
            prov_key = register_wallet(proc.url, net.accounts[2], Role.PROVIDER).api_key
            dev, provider = Client(proc.url, dev_key), ProviderClient(proc.url, prov_key)
            chain = dev.chain_info()
            assert chain is not None
            total = args.jobs + args.idle_jobs
            MarketWallet(chain, net.accounts[1]).deposit(6 * USD * total + USD)
            MarketWallet(chain, net.accounts[2]).stake(100 * USD * total)
            beat = Heartbeat(
                resources=HostResources(
                    cpu_count=total, memory_mb=64 * total + 1024, disk_mb=100_000 * total
                ),
                offers=[OfferAsk(gpu_model="CPU", price_per_hour=36)],  # type: ignore[arg-type]
            )
            stop = threading.Event()

            def heartbeats() -> None:  # the daemon's, which keeps the provider online
                while not stop.is_set():
                    provider.heartbeat(beat)
                    stop.wait(5)

            threading.Thread(target=heartbeats, daemon=True).start()
            wait_until("the provider's stake", lambda: bool(dev.match(SPEC).matches))
            claims = ClaimSigner(net.accounts[2], chain)
            try:
                print(f"idle round: {args.idle_jobs} jobs ...", file=sys.stderr)
                idle = run_round(net, dev, provider, claims, args.idle_jobs, at_once=False)
                print(f"busy round: {args.jobs} jobs ...", file=sys.stderr)
                busy = run_round(net, dev, provider, claims, args.jobs, at_once=True)
            finally:
                stop.set()

    print(f"anvil mining a block every {args.block_time} s; gas per job (each job's share)")
    print(
        f"{'':<42} {'open':>8} {'commit':>8} {'finalize':>9} {'total':>8}  txs (o/c/f)  pay->QUEUED"
    )
    for label, f in (
        (f"idle: {args.idle_jobs} jobs one after another", idle),
        (f"busy: {args.jobs} jobs paid and reported at once", busy),
    ):
        total_gas = f["open"] + f["commit"] + f["finalize"]
        print(
            f"{label:<42} {f['open']:>8,.0f} {f['commit']:>8,.0f} {f['finalize']:>9,.0f} "
            f"{total_gas:>8,.0f}  {f['open_txs']}/{f['commit_txs']}/{f['finalize_txs']}"
            f"{'':<8} {f['pay_to_queued_s']:.2f} s (median)"
        )


if __name__ == "__main__":
    main()
