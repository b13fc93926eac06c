"""Money in the job lifecycle, for real: a coordinator process settling on an anvil devnet,
driven over HTTP by the SDK (developer) and a hand-driven provider that signs its claims.

Every figure is checked on the contract: deposits, earnings, stake, treasury and burn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from gpumarket.errors import GpumarketError, InvalidRequest, PaymentRequired
from gpumarket.protocol import (
    Assignment,
    Heartbeat,
    HostResources,
    JobSpec,
    JobState,
    JobView,
    OfferAsk,
    ResultReport,
    Role,
)
from gpumarket.provider.claims import ClaimSigner
from gpumarket.sdk import AdminClient, Client, ProviderClient, register_wallet
from gpumarket.settlement.contracts import Market
from gpumarket.settlement.deploy import DEFAULT_TERMS, send_signed, write_deployment
from gpumarket.settlement.devnet import Devnet
from gpumarket.settlement.wallet import MarketWallet
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.integration.processes import CoordinatorProcess

pytestmark = pytest.mark.integration
USD = 10**6
PRICE = Decimal("36")  # per hour: 10,000 micro-units a second
WINDOW = 3600
FLOOR = DEFAULT_TERMS["min_stake"]
"""What these jobs' results lock, and a lost challenge slashes: their claims of a few seconds
at 36/h are far under the floor / ``stake_multiple`` (0.05 token), so the floor itself."""


@dataclass
class World:
    """The devnet, a coordinator settling on it, and the three parties' clients."""

    net: Devnet
    coordinator: CoordinatorProcess
    dev: Client
    dev_wallet: MarketWallet
    provider: ProviderClient
    provider_wallet: MarketWallet
    admin: AdminClient
    market: Market

    @property
    def dev_account(self) -> LocalAccount:
        return self.net.accounts[1]

    def restart(self, tmp_path: Path) -> None:
        self.coordinator.stop()
        port = int(self.coordinator.url.rsplit(":", 1)[1])
        self.coordinator = start_coordinator(self.net, tmp_path, port)

    def treasury_and_burn(self) -> tuple[int, int]:
        return int(self.market.view("treasuryBalance")), int(self.market.view("burnBalance"))


def start_coordinator(net: Devnet, tmp_path: Path, port: int | None = None) -> CoordinatorProcess:
    deployment = tmp_path / "deployment.json"
    write_deployment(net.deployment, deployment)
    env = {
        "GPUMARKET_CHAIN_RPC_URL": net.rpc_url,
        "GPUMARKET_CHAIN_DEPLOYMENT": str(deployment),
        "GPUMARKET_CHAIN_KEY": "0x" + bytes(net.accounts[0].key).hex(),
        "GPUMARKET_LEASE_SECONDS": "4",
    }
    return CoordinatorProcess.start(
        sqlite_url(tmp_path), tmp_path / "data", admin_token=ADMIN_TOKEN, port=port, extra_env=env
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with Devnet.start() as net:
        proc = start_coordinator(net, tmp_path)
        world: World | None = None
        try:
            url = proc.url
            dev_key = register_wallet(url, net.accounts[1], Role.DEVELOPER).api_key
            prov_key = register_wallet(url, net.accounts[2], Role.PROVIDER).api_key
            chain = Client(url).chain_info()
            assert chain is not None
            world = World(
                net,
                proc,
                Client(url, dev_key),
                MarketWallet(chain, net.accounts[1]),
                ProviderClient(url, prov_key),
                MarketWallet(chain, net.accounts[2]),
                AdminClient(url, ADMIN_TOKEN),
                Market(net.w3, net.deployment.market),
            )
            world.provider_wallet.stake(200 * USD)
            world.provider.heartbeat(
                Heartbeat(
                    resources=HostResources(cpu_count=4, memory_mb=8192, disk_mb=100_000),
                    offers=[OfferAsk(gpu_model="CPU", price_per_hour=PRICE)],
                )
            )
            yield world
        finally:
            proc.stop()
            if world is not None and world.coordinator is not proc:  # restarted by the test
                world.coordinator.stop()


def spec(**overrides: object) -> JobSpec:
    data: dict[str, object] = {
        "image": "busybox:latest",
        "command": ["true"],
        "max_price_per_hour": str(PRICE),
        "max_duration_seconds": 600,
    }
    data.update(overrides)
    return JobSpec.model_validate(data)


def wait_for(world: World, job_id: str, state: JobState, timeout: float = 20) -> JobView:
    deadline = time.monotonic() + timeout
    while True:
        view = world.dev.get(job_id, explain=False)
        if view.state is state:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stayed {view.state} (wanted {state})")
        time.sleep(0.2)


def take(world: World) -> Assignment:
    for _ in range(20):
        got = world.provider.poll(wait=1)
        if got:
            return got[0]
    raise AssertionError("no assignment arrived")


def run_and_claim(world: World, assignment: Assignment, usage: float) -> JobView:
    world.provider.started(assignment.job_id)
    time.sleep(usage + 0.2)  # the coordinator bills at most the wall-clock since assignment
    chain = world.provider.chain_info()
    assert chain is not None
    claim = ClaimSigner(world.net.accounts[2], chain).claim(assignment, 0, None, usage)
    return world.provider.report_result(
        assignment.job_id, ResultReport(exit_code=0, usage_seconds=usage, claim=claim)
    )


def test_job_settles_on_chain_with_exact_balances(world: World) -> None:
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    assert job.state is JobState.QUEUED
    assert [s.step for s in job.chain] == ["open"]
    escrow = 6 * USD  # 36/h for 600 s
    assert world.dev_wallet.balances().deposit == 100 * USD - escrow

    committed = run_and_claim(world, take(world), usage=1.5)
    assert committed.state is JobState.COMMITTED
    amount = 15_000  # 1.5 s x 10,000 micro-units
    assert committed.cost == Decimal("0.015")
    time.sleep(1.0)
    assert world.dev.get(job.id).state is JobState.COMMITTED  # the window is still open

    world.net.time_travel(WINDOW + 1)
    settled = wait_for(world, job.id, JobState.SETTLED)
    fee = amount * 250 // 10_000
    burned = fee * 2000 // 10_000
    assert settled.receipt is not None
    assert settled.receipt.paid == Decimal(amount - fee) / USD
    assert settled.receipt.fee == Decimal(fee) / USD
    assert settled.receipt.burned == Decimal(burned) / USD
    assert settled.receipt.refund == Decimal(escrow - amount) / USD
    assert [s.step for s in settled.chain] == ["open", "commit", "finalize"]
    assert all(s.tx_hash.startswith("0x") and len(s.tx_hash) == 66 for s in settled.chain)

    assert world.dev_wallet.balances().deposit == 100 * USD - amount
    provider = world.provider_wallet.balances()
    assert provider.earnings == amount - fee
    assert provider.locked_stake == 0
    assert world.treasury_and_burn() == (fee - burned, burned)
    assert world.provider.me().earned == Decimal(amount - fee) / USD

    before = provider.wallet
    world.provider_wallet.withdraw_earnings()
    assert world.provider_wallet.balances().wallet == before + amount - fee


def test_an_unfunded_order_is_refused_and_can_be_paid_after_a_deposit(world: World) -> None:
    with pytest.raises(PaymentRequired, match="never deposited"):
        world.dev.submit(spec(), wallet=world.dev_account)
    waiting = world.dev.jobs().items[0]
    assert waiting.state is JobState.SUBMITTED and waiting.payment is not None

    world.dev_wallet.deposit(1 * USD)
    with pytest.raises(PaymentRequired, match=r"deposit in the market is 1\.000000.*needs 6"):
        world.dev.pay(waiting, world.dev_account)
    world.dev_wallet.deposit(10 * USD)
    queued = world.dev.pay(waiting, world.dev_account)
    assert queued.state is JobState.QUEUED
    assert world.dev_wallet.balances().deposit == 5 * USD


def test_cancel_refunds_the_escrow_on_chain(world: World) -> None:
    world.dev_wallet.deposit(10 * USD)
    job = world.dev.submit(spec(resources={"cpu": 64}), wallet=world.dev_account)  # never fits
    assert world.dev_wallet.balances().deposit == 4 * USD
    world.dev.cancel(job.id)
    # The refund is on-chain as soon as its block is mined; the coordinator records the step
    # once it has read the receipt, so wait on the coordinator's view, then check the chain.
    deadline = time.monotonic() + 20
    view = world.dev.get(job.id)
    while [s.step for s in view.chain] != ["open", "cancel"]:
        assert time.monotonic() < deadline, f"the cancel was not recorded: {view.chain}"
        time.sleep(0.2)
        view = world.dev.get(job.id)
    assert view.state is JobState.CANCELLED
    assert world.dev_wallet.balances().deposit == 10 * USD
    assert view.receipt is not None and view.receipt.refund == Decimal(6)


@pytest.mark.parametrize("at_fault", [True, False])
def test_a_challenge_is_resolved_on_chain(world: World, at_fault: bool) -> None:
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    run_and_claim(world, take(world), usage=1.0)
    with pytest.raises(Exception, match="wallet"):
        world.dev.challenge(job.id, "wrong output")  # on-chain needs the developer's wallet
    disputed = world.dev.challenge(job.id, "wrong output", wallet=world.dev_account)
    assert disputed.state is JobState.DISPUTED
    assert [s.step for s in disputed.chain] == ["open", "commit", "challenge"]
    bond = 10 * USD
    wallet_before = world.dev_wallet.balances().wallet

    resolved = world.admin.resolve(job.id, provider_at_fault=at_fault, note="checked")
    provider = world.provider_wallet.balances()
    developer = world.dev_wallet.balances()
    if at_fault:
        assert resolved.state is JobState.REFUNDED
        assert developer.deposit == 100 * USD  # the whole escrow back
        assert provider.stake == 200 * USD - FLOOR and provider.locked_stake == 0  # slashed
        assert developer.earnings == FLOOR // 2 + bond  # half the slash, and the bond back
    else:
        assert resolved.state is JobState.SETTLED
        assert provider.earnings == 10_000 - 250 + bond  # paid, and the bond
        assert developer.deposit == 100 * USD - 10_000
    assert developer.wallet == wallet_before
    assert [s.step for s in resolved.chain][-1] == "resolve"
    with pytest.raises(InvalidRequest, match="only a COMMITTED result can be challenged"):
        world.dev.challenge(job.id, "again", wallet=world.dev_account)
    if at_fault:  # the developer's winnings (in earnings) come back with the deposit at once
        done = world.dev_wallet.withdraw_all()
        assert (done.deposit, done.earnings) == (100 * USD, FLOOR // 2 + bond)
        assert world.dev_wallet.balances().wallet == wallet_before + done.total


def test_a_coordinator_killed_after_commit_settles_the_job_once(
    world: World, tmp_path: Path
) -> None:
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    run_and_claim(world, take(world), usage=1.0)
    world.coordinator.process.kill()
    world.coordinator.process.wait()
    world.net.time_travel(WINDOW + 1)
    world.restart(tmp_path)
    settled = wait_for(world, job.id, JobState.SETTLED)
    assert [s.step for s in settled.chain] == ["open", "commit", "finalize"]
    fee = 10_000 * 250 // 10_000
    assert world.treasury_and_burn() == (fee - fee // 5, fee // 5)
    assert world.provider_wallet.balances().earnings == 10_000 - fee


def test_a_provider_that_goes_silent_is_replaced_and_only_the_replacement_is_paid(
    world: World,
) -> None:
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    first = take(world)
    world.provider.started(first.job_id)  # ... and then nothing: the lease runs out

    second_account = world.net.accounts[3]
    second = ProviderClient(
        world.coordinator.url,
        register_wallet(world.coordinator.url, second_account, Role.PROVIDER).api_key,
    )
    chain = second.chain_info()
    assert chain is not None
    MarketWallet(chain, second_account).stake(200 * USD)
    second.heartbeat(
        Heartbeat(
            resources=HostResources(cpu_count=4, memory_mb=8192, disk_mb=100_000),
            offers=[OfferAsk(gpu_model="CPU", price_per_hour=PRICE)],
        )
    )
    deadline = time.monotonic() + 30
    while not (got := second.poll(wait=1)):
        assert time.monotonic() < deadline, "the job was not handed to the second provider"
    assert got[0].job_id == job.id and got[0].attempt == 2
    second.started(job.id)
    time.sleep(1.2)
    claim = ClaimSigner(second_account, chain).claim(got[0], 0, None, 1.0)
    second.report_result(job.id, ResultReport(exit_code=0, usage_seconds=1.0, claim=claim))

    late = ClaimSigner(world.net.accounts[2], chain).claim(first, 0, None, 1.0)
    with pytest.raises(GpumarketError):  # the first provider's result is no longer wanted
        world.provider.report_result(
            job.id, ResultReport(exit_code=0, usage_seconds=1.0, claim=late)
        )
    world.net.time_travel(WINDOW + 1)
    wait_for(world, job.id, JobState.SETTLED)
    fee = 10_000 * 250 // 10_000
    assert MarketWallet(chain, second_account).balances().earnings == 10_000 - fee
    assert world.provider_wallet.balances().earnings == 0
    assert world.dev_wallet.balances().deposit == 100 * USD - 10_000


def send_as(world: World, who: LocalAccount, function: str, *args: object) -> None:
    send_signed(
        world.net.w3,
        who,
        {
            "to": world.market.address,
            "gas": 400_000,
            "data": world.market.calldata(function, *args),
        },
    )


def test_what_others_do_on_the_contract_is_reconciled_from_its_events(
    world: World, tmp_path: Path
) -> None:
    world.dev_wallet.deposit(100 * USD)
    challenged = world.dev.submit(spec(), wallet=world.dev_account)
    run_and_claim(world, take(world), usage=1.0)
    finalized = world.dev.submit(spec(), wallet=world.dev_account)
    run_and_claim(world, take(world), usage=1.0)
    expiring = world.dev.submit(spec(resources={"cpu": 64}), wallet=world.dev_account)

    # the developer challenges straight on the contract, without telling the coordinator
    assert challenged.chain_job_id is not None
    world.dev_wallet.challenge(challenged.chain_job_id)
    disputed = wait_for(world, challenged.id, JobState.DISPUTED)
    assert [s.step for s in disputed.chain] == ["open", "commit", "challenge"]

    # with the coordinator down, a stranger finalizes one job and expires another
    world.coordinator.stop()
    world.net.time_travel(3 * 24 * 3600)
    stranger = world.net.accounts[4]
    assert finalized.chain_job_id is not None and expiring.chain_job_id is not None
    send_as(world, stranger, "finalize", bytes.fromhex(finalized.chain_job_id[2:]))
    send_as(world, stranger, "expire", bytes.fromhex(expiring.chain_job_id[2:]))
    world.restart(tmp_path)

    settled = wait_for(world, finalized.id, JobState.SETTLED)
    assert [s.step for s in settled.chain] == ["open", "commit", "finalize"]
    assert settled.receipt is not None and settled.receipt.paid == Decimal("0.00975")
    failed = wait_for(world, expiring.id, JobState.EXPIRED)
    assert "deadline passed" in (failed.failure_reason or "")
    assert failed.receipt is not None and failed.receipt.refund == Decimal(6)
    assert world.provider_wallet.balances().earnings == 10_000 - 250  # paid once
    # 100 - paid job (0.01) - the disputed escrow (6) still held
    assert world.dev_wallet.balances().deposit == 100 * USD - 10_000 - 6 * USD


@pytest.mark.parametrize("at_fault", [True, False])
def test_a_ruling_made_straight_on_the_contract_is_reconciled(world: World, at_fault: bool) -> None:
    arbiter = world.net.accounts[4]
    role = world.market.view("ARBITER_ROLE")
    send_as(world, world.net.accounts[0], "grantRole", role, arbiter.address)
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    run_and_claim(world, take(world), usage=1.0)
    world.dev.challenge(job.id, "wrong output", wallet=world.dev_account)
    assert job.chain_job_id is not None
    send_as(world, arbiter, "resolve", bytes.fromhex(job.chain_job_id[2:]), at_fault)

    ruled = wait_for(world, job.id, JobState.REFUNDED if at_fault else JobState.SETTLED)
    assert [s.step for s in ruled.chain] == ["open", "commit", "challenge", "resolve"]
    assert ruled.receipt is not None
    if at_fault:
        assert ruled.receipt.refund == Decimal(6) and ruled.receipt.paid == 0
        assert world.dev_wallet.balances().deposit == 100 * USD
    else:
        assert ruled.receipt.paid == Decimal("0.00975")
        assert world.provider.me().earned == Decimal("0.00975")


def test_a_cancelled_runs_claim_can_be_challenged_and_ruled_on(world: World) -> None:
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    assignment = take(world)
    world.provider.started(job.id)
    time.sleep(1.5)
    world.dev.cancel(job.id)
    billed = world.provider.job(job.id).cost
    assert billed is not None and billed > 0
    chain = world.provider.chain_info()
    assert chain is not None
    claim = ClaimSigner(world.net.accounts[2], chain).claim(
        assignment, 137, None, 1.5, cap_micros=int(billed * USD)
    )
    claimed = world.provider.report_result(
        job.id, ResultReport(exit_code=137, usage_seconds=1.5, claim=claim)
    )
    assert claimed.state is JobState.CANCELLED
    assert [s.step for s in claimed.chain] == ["open", "commit"]

    assert job.chain_job_id is not None
    world.dev_wallet.challenge(job.chain_job_id)  # straight on the contract
    deadline = time.monotonic() + 20
    while [s.step for s in world.dev.get(job.id).chain][-1] != "challenge":
        assert time.monotonic() < deadline, "the on-chain challenge was not picked up"
        time.sleep(0.2)
    assert [j.id for j in world.admin.disputes()] == [job.id]  # listed though CANCELLED
    ruled = world.admin.resolve(job.id, provider_at_fault=True, note="it never ran")
    assert world.admin.disputes() == []
    assert ruled.state is JobState.CANCELLED
    assert ruled.receipt is not None and ruled.receipt.refund == Decimal(6)
    assert world.dev_wallet.balances().deposit == 100 * USD
    assert world.provider_wallet.balances().stake == 200 * USD - FLOOR  # the floor slashed


def test_a_provider_without_stake_gets_no_job_until_it_stakes(world: World) -> None:
    staked_id = world.provider.me().id
    world.admin.ban(staked_id, "out of this test")
    account = world.net.accounts[3]
    url = world.coordinator.url
    newcomer = ProviderClient(url, register_wallet(url, account, Role.PROVIDER).api_key)
    newcomer.heartbeat(
        Heartbeat(
            resources=HostResources(cpu_count=4, memory_mb=8192, disk_mb=100_000),
            offers=[OfferAsk(gpu_model="CPU", price_per_hour=PRICE)],
        )
    )
    world.dev_wallet.deposit(100 * USD)
    job = world.dev.submit(spec(), wallet=world.dev_account)
    time.sleep(1.5)
    waiting = world.dev.get(job.id)
    assert waiting.state is JobState.QUEUED and waiting.why_no_match is not None
    assert waiting.why_no_match.summary.get("stake") == 1, waiting.why_no_match

    chain = newcomer.chain_info()
    assert chain is not None
    MarketWallet(chain, account).stake(150 * USD)
    deadline = time.monotonic() + 20
    while not (got := newcomer.poll(wait=1)):
        assert time.monotonic() < deadline, "the newly staked provider got no job"
    assert got[0].job_id == job.id


def test_metrics_show_the_chain_side(world: World) -> None:
    """An operator's alerts: the RPC endpoint up, the coordinator's gas money, the outbox."""

    def gauges() -> dict[str, float]:
        text = httpx.get(
            f"{world.coordinator.url}/metrics",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        ).text
        lines = [line.split() for line in text.splitlines() if line.startswith("gpumarket_chain")]
        return {name: float(value) for name, value in lines}

    world.dev_wallet.deposit(100 * USD)  # the developer's own gas
    before = gauges()
    assert before["gpumarket_chain_up"] == 1.0
    assert before["gpumarket_chain_outbox_pending"] == 0.0
    assert before["gpumarket_chain_block"] == world.net.w3.eth.block_number
    gas = world.net.w3.eth.get_balance(world.net.accounts[0].address) / 10**18
    assert before["gpumarket_chain_sender_balance_eth"] == pytest.approx(gas)

    job = world.dev.submit(spec(), wallet=world.net.accounts[1])  # an open spends gas
    wait_for(world, job.id, JobState.QUEUED)
    after = gauges()
    balance = "gpumarket_chain_sender_balance_eth"
    assert after[balance] < before[balance]
    assert after["gpumarket_chain_block"] > before["gpumarket_chain_block"]
