"""The chain backend's intent and apply steps, over the in-memory market: what it checks before
anything is sent (orders and claims signed by the right wallets, over the right result), what
it marks for the refunder, and that every move of a job's money is recorded in ``job_events``
(kind ``chain``) with the transaction, block and gas that made it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from eth_account import Account
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import refunder
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import disputes, jobs, lifecycle, orders
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Conflict, InvalidRequest
from gpumarket.protocol import PaymentRequest, ResultReport
from gpumarket.settlement.market_client import CHAIN_NONE, CHAIN_OPEN, CHAIN_REFUNDED
from gpumarket.settlement.signing import job_id_bytes
from tests.fakes.market import FakeMarket
from tests.unit.coordinator.chain_rig import AMOUNT, ESCROW, USD, ChainRig, ChainStep

LEASE_AGO = timedelta(seconds=10)
STRANGER = Account.from_key("0x" + "42" * 32)
ReportMaker = Callable[[ChainRig, str], ResultReport]


@pytest.fixture
def rig(factory: sessionmaker[Session], svc_settings: CoordinatorSettings) -> ChainRig:
    """The chain backend over a fresh fake market, a funded developer and a staked provider."""
    return ChainRig.create(factory, svc_settings)


def step(rig: ChainRig, frm: str | None, to: str, function: str, index: int = 0) -> ChainStep:
    """The chain event a move made by the ``index``-th ``function`` transaction should be."""
    mined = rig.market.mined(function)[index]
    return ChainStep(frm, to, mined.hash, mined.block, mined.gas_used)


# ---------------------------------------------------------------- orders


def test_a_new_job_asks_its_developer_to_sign_an_order_for_this_market(rig: ChainRig) -> None:
    job_id = rig.submit()
    job = rig.job(job_id)
    request = PaymentRequest.model_validate(job.payment_request)
    assert job.state == "SUBMITTED" and job.chain_state == "awaiting_order"
    assert job.chain_job_id == request.chain_job_id == "0x" + job_id_bytes(job_id).hex()
    assert (request.chain_id, request.market) == (31337, rig.market.deployment.market)
    assert request.spec_hash == "0x" + job.spec_hash
    assert request.max_payment_micros == job.escrow_micros == ESCROW
    assert request.deadline > rig.market.chain_time()  # openable now
    assert rig.market.calls == []  # nothing is sent before the developer signs


def test_an_order_signed_by_another_wallet_is_refused_saying_who_signed_it(
    rig: ChainRig,
) -> None:
    job_id = rig.submit()
    stranger = Account.create()
    signature = rig.order_signature(job_id, stranger)
    with pytest.raises(InvalidRequest) as refused:
        orders.sign_order(rig.factory, rig.backend, rig.dev, job_id, signature)
    assert f"signed by {stranger.address}, but the job belongs to {rig.dev.address}" in str(
        refused.value
    )
    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.order_signature) == (
        "SUBMITTED",
        "awaiting_order",
        None,
    )
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_NONE
    assert rig.market.calls == []


def test_an_order_repeated_once_the_escrow_is_open_is_answered_without_a_second_open(
    rig: ChainRig,
) -> None:
    job_id = rig.submit()
    first = rig.fund(job_id)
    assert (first.state, first.chain_state) == ("QUEUED", "open")
    signature = rig.order_signature(job_id)
    with session_scope(rig.factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        assert rig.backend.order_intent(session, job, rig.dev.address or "", signature) is None
    again = rig.fund(job_id)
    assert (again.state, again.chain_state) == ("QUEUED", "open")
    assert len(rig.market.mined("openJob")) == 1
    assert rig.market.balance(rig.dev_wallet.address).deposit == 100 * USD - ESCROW


def test_an_order_for_a_cancelled_job_is_a_conflict(rig: ChainRig) -> None:
    job_id = rig.submit()
    with session_scope(rig.factory) as session:
        jobs.cancel(session, rig.dev, job_id, rig.backend, rig.settings)
    with pytest.raises(Conflict, match="CANCELLED; it takes no order now"):
        rig.fund(job_id)
    assert rig.market.calls == []


def test_an_order_opened_after_its_job_was_cancelled_is_returned(rig: ChainRig) -> None:
    """The developer cancels while their order is on its way to the contract: the job stays
    CANCELLED, the escrow the order opened is marked for return, and the refunder returns it."""
    job_id = rig.submit()
    intent = rig.record_order(job_id)
    with session_scope(rig.factory) as session:
        jobs.cancel(session, rig.dev, job_id, rig.backend, rig.settings)
    assert rig.job(job_id).chain_state == "void"

    job = orders.apply_opened(rig.factory, rig.backend, job_id, rig.backend.open(intent))

    assert (job.state, job.chain_state) == ("CANCELLED", "cancelling")
    assert rig.chain_steps(job_id)[-1] == step(rig, "void", "cancelling", "openJob")
    assert refunder.send_refunds(rig.factory, rig.backend) == 1
    assert rig.job(job_id).chain_state == "cancelled"
    assert rig.market.balance(rig.dev_wallet.address).deposit == 100 * USD


# ---------------------------------------------------------------- claims


def unsigned(report: ResultReport) -> ResultReport:
    return report.model_copy(update={"claim": None})


@pytest.mark.parametrize(
    ("make_report", "message"),
    [
        (
            lambda rig, job_id: unsigned(rig.claim(job_id)),
            "this market settles on-chain: the result needs a signed claim",
        ),
        (
            lambda rig, job_id: rig.claim(job_id, signed_hash=b"\x01" * 32),
            "does not match exit code 0 and outputs None",
        ),
        (
            lambda rig, job_id: rig.claim(job_id, wallet=STRANGER),
            f"the claim is signed by {STRANGER.address}, not by your registered wallet",
        ),
    ],
    ids=["no-claim", "other-result", "other-signer"],
)
def test_a_claim_the_coordinator_cannot_stand_behind_is_refused_before_sending(
    rig: ChainRig, make_report: ReportMaker, message: str
) -> None:
    job_id = rig.running()
    with pytest.raises(InvalidRequest) as refused:
        rig.report(job_id, make_report(rig, job_id))
    assert message in str(refused.value)
    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.pending_result) == ("RUNNING", "open", None)
    assert rig.market.sent("commitResult") == []
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_OPEN


def test_a_repeated_result_is_answered_without_a_second_commit(rig: ChainRig) -> None:
    job_id = rig.committed()
    again = rig.report(job_id)
    assert (again.state, again.chain_state) == ("COMMITTED", "committed")
    assert len(rig.market.mined("commitResult")) == 1


# ---------------------------------------------------------------- refunds


def test_ending_a_job_unpaid_marks_what_the_ledger_owes_back(rig: ChainRig) -> None:
    """A queued escrow is to be cancelled; a run cancelled midway first waits for its
    provider's claim for the seconds it ran; an order never opened is just void. Marking
    sends nothing: the refunder does."""
    running = rig.running()
    queued = rig.queued()
    unopened = rig.submit()
    with session_scope(rig.factory) as session:  # it has run for a while
        lifecycle.load_job_for_update(session, running).started_at = utcnow() - LEASE_AGO
    sent = list(rig.market.calls)
    for job_id in (running, queued, unopened):
        with session_scope(rig.factory) as session:
            jobs.cancel(session, rig.dev, job_id, rig.backend, rig.settings)

    marked = {job_id: rig.chain_steps(job_id)[-1] for job_id in (running, queued, unopened)}
    assert (marked[queued].from_state, marked[queued].to_state) == ("open", "cancelling")
    assert (marked[running].from_state, marked[running].to_state) == ("open", "claim_due")
    assert (marked[unopened].from_state, marked[unopened].to_state) == ("awaiting_order", "void")
    assert all(m.tx_hash is None for m in marked.values())
    billed = rig.job(running).amount_micros  # the ~10 s it ran, at 10,000 micros a second
    assert billed is not None and 100_000 <= billed < 120_000
    assert rig.market.calls == sent
    with session_scope(rig.factory) as session:
        due = {job_id for job_id, _, _ in rig.backend.due_for_refund(session, 10)}
    assert due == {queued}  # the cancelled run's provider has a lease to claim its seconds


# ---------------------------------------------------------------- recorded moves


def test_every_money_move_is_a_chain_event_with_its_transaction_block_and_gas(
    rig: ChainRig,
) -> None:
    job_id = rig.committed()
    ref = rig.ref(job_id)
    rig.pass_window()
    with session_scope(rig.factory) as session:
        due = rig.backend.due_for_finalize(session, rig.market.chain_time(), 10)
    assert due == [(job_id, ref)]
    finalized = rig.backend.finalize([ref])
    with session_scope(rig.factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        assert rig.backend.apply_finalize(session, job, ref, finalized)
        assert not rig.backend.apply_finalize(session, job, ref, finalized)  # recorded once

    assert rig.chain_steps(job_id) == [
        ChainStep(None, "awaiting_order", None, None, None),
        step(rig, "awaiting_order", "open", "openJob"),
        step(rig, "open", "committed", "commitResult"),
        step(rig, "committed", "settled", "finalize"),
    ]
    assert [(s, block) for s, _, block, _ in rig.receipts(job_id)] == [
        ("open", rig.market.mined("openJob")[0].block),
        ("commit", rig.market.mined("commitResult")[0].block),
        ("finalize", rig.market.mined("finalize")[0].block),
    ]
    job = rig.job(job_id)
    assert job.chain_window_end == rig.market.job(rig.ref(job_id)).window_end
    # the contract's split: 2.5% fee of the claim, a fifth of it burned, the rest refunded
    assert (job.paid_micros, job.fee_micros, job.burned_micros, job.refund_micros) == (
        AMOUNT - 250,
        250,
        50,
        ESCROW - AMOUNT,
    )


def test_a_ruling_by_the_coordinator_records_the_challenge_and_the_ruling(
    rig: ChainRig,
) -> None:
    """The developer challenges on the contract and tells the coordinator; the arbiter rules
    against the provider: the escrow goes back and both transactions are on the record."""
    job_id = rig.committed()
    tx = rig.market.challenge_by(rig.dev_wallet.address, rig.ref(job_id))
    disputes.challenge(rig.factory, rig.backend, rig.dev, job_id, "empty outputs", tx)
    ruled = disputes.resolve(rig.factory, rig.backend, job_id, True, "outputs were empty")

    assert (ruled.state, ruled.chain_state) == ("REFUNDED", "refunded")
    assert (ruled.paid_micros, ruled.refund_micros) == (0, ESCROW)
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_REFUNDED
    assert rig.chain_steps(job_id)[-2:] == [
        step(rig, "committed", "disputed", "challenge"),
        step(rig, "disputed", "refunded", "resolve"),
    ]
    assert [s for s, *_ in rig.receipts(job_id)] == ["open", "commit", "challenge", "resolve"]
    # the challenger's bond came back with half the provider's slashed stake
    assert rig.market.balance(rig.dev_wallet.address).earnings == 500_000 + 500_000
    assert rig.market.free_stake(rig.provider_wallet.address) == 4_000_000


def test_a_challenge_the_contract_does_not_have_is_a_conflict(rig: ChainRig) -> None:
    job_id = rig.committed()
    with pytest.raises(Conflict, match="the contract has no challenge for this job"):
        disputes.challenge(rig.factory, rig.backend, rig.dev, job_id, "too slow", None)
    assert rig.job(job_id).state == "COMMITTED"


def test_the_operator_figures_come_from_the_contract(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    market = FakeMarket(window=900, fee_bps=100, min_stake=2_000_000)
    rig = ChainRig.create(factory, svc_settings, market)
    info = rig.backend.info()
    assert (info.fee_bps, info.window_seconds, info.market) == (100, 900, market.deployment.market)
    assert rig.backend.market_terms().min_stake_micros == 2_000_000
    assert rig.backend.chain_time() == market.now
    health = rig.backend.health()
    assert (health.up, health.block, health.outbox_pending) == (True, market.block, 0)
    rig.backend.set_fee(300, None)
    assert rig.backend.info().fee_bps == 300
    rig.backend.set_paused(True)
    assert rig.backend.is_paused()
