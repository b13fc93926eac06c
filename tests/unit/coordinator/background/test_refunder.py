"""The refunder loop over the in-memory market: escrows of jobs that ended unpaid go back to
their developers, once each; a run cancelled midway first waits a lease for its provider's
claim; an escrow someone else returned first counts as returned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import chain_resume, finalizer, refunder
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import jobs, lifecycle
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import PaymentRequired, Unreachable
from gpumarket.settlement.market_client import CHAIN_CANCELLED, CHAIN_SETTLED
from tests.unit.coordinator.chain_rig import ESCROW, USD, ChainRig, ChainStep

DEPOSIT = 100 * USD


@pytest.fixture
def rig(factory: sessionmaker[Session], svc_settings: CoordinatorSettings) -> ChainRig:
    """The chain backend over a fresh fake market, a funded developer and a staked provider."""
    return ChainRig.create(factory, svc_settings)


def cancel(rig: ChainRig, job_id: str) -> None:
    with session_scope(rig.factory) as session:
        jobs.cancel(session, rig.dev, job_id, rig.backend, rig.settings)


def deposit(rig: ChainRig) -> int:
    return rig.market.balance(rig.dev_wallet.address).deposit


def test_escrows_of_jobs_that_ended_unpaid_go_back_once(rig: ChainRig) -> None:
    cancelled, expired = rig.queued(), rig.queued()
    cancel(rig, cancelled)
    with session_scope(rig.factory) as session:
        lifecycle.expire(session, lifecycle.load_job_for_update(session, expired), rig.backend)
    assert deposit(rig) == DEPOSIT - 2 * ESCROW

    assert refunder.send_refunds(rig.factory, rig.backend) == 2

    cancels = rig.market.mined("cancel")
    assert len(cancels) == 2
    for job_id, tx in zip((cancelled, expired), cancels, strict=True):
        job = rig.job(job_id)
        assert (job.chain_state, job.refund_micros) == ("cancelled", ESCROW)
        assert rig.market.job_state(rig.ref(job_id)) == CHAIN_CANCELLED
        assert rig.chain_steps(job_id)[-1] == ChainStep(
            "cancelling", "cancelled", tx.hash, tx.block, tx.gas_used
        )
    assert (rig.job(cancelled).state, rig.job(expired).state) == ("CANCELLED", "EXPIRED")
    assert deposit(rig) == DEPOSIT

    assert refunder.send_refunds(rig.factory, rig.backend) == 0
    assert len(rig.market.mined("cancel")) == 2
    assert deposit(rig) == DEPOSIT


def test_a_run_cancelled_midway_waits_a_lease_for_its_claim_then_is_refunded_whole(
    rig: ChainRig,
) -> None:
    job_id = rig.running()
    cancel(rig, job_id)
    assert rig.job(job_id).chain_state == "claim_due"
    assert refunder.send_refunds(rig.factory, rig.backend) == 0  # the provider may still claim
    assert rig.market.mined("cancel") == []

    with session_scope(rig.factory) as session:  # a lease passes without a claim
        job = lifecycle.load_job_for_update(session, job_id)
        job.finished_at = utcnow() - timedelta(seconds=rig.settings.lease_seconds + 1)
    assert refunder.send_refunds(rig.factory, rig.backend) == 1

    [tx] = rig.market.mined("cancel")
    assert [(s.from_state, s.to_state, s.tx_hash) for s in rig.chain_steps(job_id)[-3:]] == [
        ("open", "claim_due", None),
        ("claim_due", "cancelling", None),
        ("cancelling", "cancelled", tx.hash),
    ]
    assert rig.job(job_id).refund_micros == ESCROW
    assert deposit(rig) == DEPOSIT


def test_a_cancelled_run_that_claims_its_seconds_in_time_is_paid_not_refunded(
    rig: ChainRig,
) -> None:
    job_id = rig.running()
    cancel(rig, job_id)
    rig.report(job_id)  # the provider's claim for the second it ran
    job = rig.job(job_id)
    assert (job.state, job.chain_state) == ("CANCELLED", "committed")
    assert refunder.send_refunds(rig.factory, rig.backend) == 0
    assert rig.market.mined("cancel") == []

    rig.pass_window()
    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 1
    job = rig.job(job_id)
    assert (job.state, job.chain_state) == ("CANCELLED", "settled")
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_SETTLED


def test_an_escrow_someone_else_expired_first_counts_as_returned(rig: ChainRig) -> None:
    job_id = rig.queued()
    ref = rig.ref(job_id)
    rig.market.advance(rig.market.job(ref).deadline - rig.market.now + 1)
    rig.market.expire_by(rig.provider_wallet.address, ref)
    cancel(rig, job_id)

    assert refunder.send_refunds(rig.factory, rig.backend) == 1

    assert rig.market.mined("cancel") == []  # the contract refused a second return
    job = rig.job(job_id)
    assert (job.chain_state, job.refund_micros) == ("cancelled", ESCROW)
    assert deposit(rig) == DEPOSIT  # returned once
    assert refunder.send_refunds(rig.factory, rig.backend) == 0


def test_a_refund_whose_answer_was_lost_is_recorded_next_run_without_a_second_cancel(
    rig: ChainRig,
) -> None:
    job_id = rig.queued()
    cancel(rig, job_id)
    rig.market.lose_answer("cancel")
    with pytest.raises(Unreachable):
        refunder.send_refunds(rig.factory, rig.backend)
    assert rig.job(job_id).chain_state == "cancelling"
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_CANCELLED

    assert refunder.send_refunds(rig.factory, rig.backend) == 1

    [tx] = rig.market.mined("cancel")
    assert rig.market.repeats == [f"cancel:{rig.ref(job_id)}"]
    assert rig.chain_steps(job_id)[-1].tx_hash == tx.hash
    assert deposit(rig) == DEPOSIT


def test_a_late_claim_on_its_way_is_not_refunded_and_the_resume_loop_commits_it(
    rig: ChainRig,
) -> None:
    """A cancelled run's claim recorded by a request that died before sending it: past the
    lease the refunder leaves it alone (a cancel racing the commit would strand the job), and
    the resume loop sends it; the job's seconds are then paid like any result."""
    job_id = rig.running()
    cancel(rig, job_id)
    report = rig.claim(job_id)
    with session_scope(rig.factory) as session:  # the intent of a request that then died
        job = lifecycle.load_job_for_update(session, job_id)
        rig.backend.claim_intent(session, job, report, rig.provider_wallet.address)
        job.finished_at = utcnow() - timedelta(seconds=rig.settings.lease_seconds + 1)
        job.updated_at = utcnow() - timedelta(seconds=60)

    assert refunder.send_refunds(rig.factory, rig.backend) == 0
    assert rig.market.mined("cancel") == []
    assert rig.job(job_id).chain_state == "claim_due"

    assert chain_resume.resume_intents(rig.factory, rig.backend, rig.settings) == 1
    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.pending_result) == ("CANCELLED", "committed", None)
    assert len(rig.market.mined("commitResult")) == 1
    assert refunder.send_refunds(rig.factory, rig.backend) == 0


def test_a_claim_the_contract_refuses_is_forgotten_and_a_cancelled_run_is_refunded(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    """A provider without the stake a result locks: its claim is refused (402) and dropped,
    so the resume loop does not repeat it and, once the job is cancelled and a lease passes,
    the refunder returns the whole escrow instead of waiting for a claim forever."""
    rig = ChainRig.create(factory, svc_settings, stake=1)  # a micro: under what a result locks
    job_id = rig.running()
    with pytest.raises(PaymentRequired, match="stake"):
        rig.report(job_id)
    assert rig.job(job_id).pending_result is None
    cancel(rig, job_id)
    with session_scope(rig.factory) as session:  # a lease passes without a claim
        job = lifecycle.load_job_for_update(session, job_id)
        job.finished_at = utcnow() - timedelta(seconds=rig.settings.lease_seconds + 1)
        job.updated_at = utcnow() - timedelta(seconds=60)
    assert chain_resume.resume_intents(rig.factory, rig.backend, rig.settings) == 0
    assert refunder.send_refunds(rig.factory, rig.backend) == 1
    assert rig.job(job_id).refund_micros == ESCROW
