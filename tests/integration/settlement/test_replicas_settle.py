"""Two coordinator replicas on one PostgreSQL database, settling on one anvil chain with the
same key: both take orders and claims (both send transactions), the replica holding the
settlement lease pays out, and it is SIGKILLed while its payout transaction waits for its
block. The other replica takes the lease over, resumes from the shared outbox and settles
everything exactly once: the contract's balances match the coordinator's receipts to the unit
and the key's nonces have no gap and no repeat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from gpumarket.coordinator.db.models import Job, JobEventRow, Lease, OutboxRow
from gpumarket.protocol import (
    Assignment,
    Heartbeat,
    HostResources,
    JobSpec,
    JobState,
    OfferAsk,
    ResultReport,
    Role,
)
from gpumarket.provider.claims import ClaimSigner
from gpumarket.sdk import Client, ProviderClient, register_wallet
from gpumarket.settlement.contracts import Market
from gpumarket.settlement.deploy import write_deployment
from gpumarket.settlement.devnet import Devnet
from gpumarket.settlement.wallet import MarketWallet
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import fresh_postgres_database
from tests.integration.processes import CoordinatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

USD = 10**6
PRICE = Decimal("36")  # 10,000 micro-units a second
WINDOW = 3600
JOBS = 6
TAKEOVER_LIMIT_SECONDS = 15.0
SPEC = JobSpec.model_validate(
    {
        "image": "busybox:latest",
        "command": ["true"],
        "max_price_per_hour": str(PRICE),
        "max_duration_seconds": 600,
    }
)
NO_PROVIDER_SPEC = SPEC.model_copy(update={"max_price_per_hour": Decimal("1")})


@pytest.fixture
def net() -> Iterator[Devnet]:
    # a block a second, as on a real chain: each transaction waits for its block, so a
    # replica can be killed while its transaction is sent and not yet mined
    with Devnet.start(block_time=1) as devnet:
        yield devnet


def start_replica(net: Devnet, db_url: str, data_dir: Path) -> CoordinatorProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    deployment = data_dir / "deployment.json"
    write_deployment(net.deployment, deployment)
    env = {
        "GPUMARKET_CHAIN_RPC_URL": net.rpc_url,
        "GPUMARKET_CHAIN_DEPLOYMENT": str(deployment),
        "GPUMARKET_CHAIN_KEY": "0x" + bytes(net.accounts[0].key).hex(),  # the same key
        "GPUMARKET_SETTLEMENT_LEASE_SECONDS": "6",
        "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.2",
    }
    return CoordinatorProcess.start(db_url, data_dir, ADMIN_TOKEN, extra_env=env)


def take(provider: ProviderClient) -> Assignment:
    for _ in range(30):
        got = provider.poll(wait=1)
        if got:
            return got[0]
    raise AssertionError("no assignment arrived")


def holder(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(select(Lease.holder).where(Lease.name == "settlement"))


def wait_until(what: str, check: object, timeout: float = 60.0, every: float = 0.05) -> float:
    """Poll ``check`` until it is truthy; how long that took."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(every)
    return time.monotonic() - start


def test_the_sending_replica_dies_mid_batch_and_the_other_settles_everything_once(
    net: Devnet, tmp_path: Path
) -> None:
    db_url = fresh_postgres_database()
    engine = create_engine(db_url)
    coordinator = net.accounts[0].address
    nonce_before = net.w3.eth.get_transaction_count(coordinator)
    replicas = [
        start_replica(net, db_url, tmp_path / "a"),
        start_replica(net, db_url, tmp_path / "b"),
    ]
    try:
        urls = [r.url for r in replicas]
        dev_key = register_wallet(urls[0], net.accounts[1], Role.DEVELOPER).api_key
        prov_key = register_wallet(urls[1], net.accounts[2], Role.PROVIDER).api_key
        devs = [Client(url, dev_key) for url in urls]
        providers = [ProviderClient(url, prov_key) for url in urls]
        chain = devs[0].chain_info()
        assert chain is not None
        dev_wallet = MarketWallet(chain, net.accounts[1])
        prov_wallet = MarketWallet(chain, net.accounts[2])
        dev_wallet.deposit(100 * USD)
        prov_wallet.stake(100 * USD * JOBS)
        beat = Heartbeat(
            resources=HostResources(cpu_count=JOBS, memory_mb=65_536, disk_mb=100_000),
            offers=[OfferAsk(gpu_model="CPU", price_per_hour=PRICE)],
        )
        providers[0].heartbeat(beat)
        signer = ClaimSigner(net.accounts[2], chain)

        # a stream of jobs through both replicas: orders and claims are sent by both
        jobs = [devs[i % 2].submit(SPEC, wallet=net.accounts[1]) for i in range(JOBS)]
        unmatched = devs[1].submit(NO_PROVIDER_SPEC, wallet=net.accounts[1])
        for i in range(JOBS):
            assignment = take(providers[i % 2])
            providers[i % 2].started(assignment.job_id)
            time.sleep(0.1)
            claim = signer.claim(assignment, 0, None, 0.1)
            report = ResultReport(exit_code=0, usage_seconds=0.1, claim=claim)
            committed = providers[(i + 1) % 2].report_result(assignment.job_id, report)
            assert committed.state is JobState.COMMITTED
        cancelled = devs[0].cancel(unmatched.id)  # its escrow goes back through the refunder
        assert cancelled.state is JobState.CANCELLED

        # the windows end: the lease holder sends the payout; kill it while the transaction
        # waits for its block
        leader = holder(engine)
        assert leader is not None
        dying = next(r for r in replicas if f":{r.process.pid}:" in leader)
        survivor = next(r for r in replicas if r is not dying)
        net.time_travel(WINDOW + 1)

        def payout_in_flight() -> bool:
            with engine.connect() as connection:
                return bool(
                    connection.scalar(
                        select(func.count()).where(
                            OutboxRow.status == "sent",
                            OutboxRow.key.like("finalize%"),
                        )
                    )
                )

        wait_until("the payout to be sent", payout_in_flight, every=0.01)
        dying.process.kill()
        dying.process.wait()
        killed_at = time.monotonic()
        takeover = wait_until(
            "another replica to take the settlement lease",
            lambda: (holder(engine) or "").split(":")[1] == str(survivor.process.pid),
            every=0.1,
        )
        assert takeover < TAKEOVER_LIMIT_SECONDS, f"took {takeover:.1f}s"

        dev = Client(survivor.url, dev_key)

        def all_done() -> bool:
            views = [dev.get(j.id, explain=False) for j in jobs]
            refund = dev.get(unmatched.id, explain=False)
            return all(v.state is JobState.SETTLED for v in views) and refund.receipt is not None

        wait_until("every job to settle", all_done, timeout=90, every=0.3)
        settled_after = time.monotonic() - killed_at

        def outbox_confirmed() -> bool:  # the dead replica's payout, confirmed by the resume
            with engine.connect() as connection:
                return not connection.scalar(select(func.count()).where(OutboxRow.status == "sent"))

        wait_until("the outbox to be confirmed", outbox_confirmed, timeout=30, every=0.2)

        # exactly once: one lifecycle SETTLED and one chain "settled" per job
        with engine.connect() as connection:
            for job in jobs:
                moves = connection.execute(
                    select(JobEventRow.kind, JobEventRow.to_state).where(
                        JobEventRow.job_id == job.id,
                        JobEventRow.to_state.in_([JobState.SETTLED.value, "settled"]),
                    )
                ).all()
                assert sorted(moves) == [("chain", "settled"), ("job", "SETTLED")], moves
            rows = connection.execute(
                select(Job.paid_micros, Job.fee_micros, Job.refund_micros, Job.amount_micros).where(
                    Job.id.in_([j.id for j in jobs])
                )
            ).all()
            refund_row = connection.execute(
                select(Job.refund_micros, Job.escrow_micros).where(Job.id == unmatched.id)
            ).one()
            nonces = sorted(
                connection.scalars(select(OutboxRow.nonce).where(OutboxRow.sender == coordinator))
            )
            statuses = set(connection.scalars(select(OutboxRow.status)))

        # the contract's balances match the coordinator's receipts to the unit
        paid = sum(r.paid_micros for r in rows)
        fees = sum(r.fee_micros for r in rows)
        charged = sum(r.amount_micros for r in rows)
        assert prov_wallet.balances().earnings == paid
        assert paid + fees == charged
        market = Market(net.w3, net.deployment.market)
        treasury = int(market.view("treasuryBalance")) + int(market.view("burnBalance"))
        assert treasury == fees
        assert refund_row.refund_micros == refund_row.escrow_micros
        assert dev_wallet.balances().deposit == 100 * USD - charged

        # the key's nonces: every transaction the replicas sent, none skipped, none twice
        nonce_after = net.w3.eth.get_transaction_count(coordinator)
        assert nonces == list(range(nonce_before, nonce_after)), (nonces, nonce_after)
        assert statuses == {"done"}
        print(  # the figures for the closing note (pytest -s)
            f"takeover {takeover:.1f}s, everything settled {settled_after:.1f}s after the kill, "
            f"{len(nonces)} transactions from two replicas"
        )
    finally:
        for replica in replicas:
            replica.stop()
        engine.dispose()
