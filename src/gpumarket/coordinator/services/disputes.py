"""Challenges and rulings: the money steps that freeze a payment and decide where it goes.

A developer challenges a COMMITTED result inside its window (on-chain, the developer's own
transaction to the contract takes the bond; this records it); the operator rules, and the
ledger applies the ruling's money before the job's record follows. The event follower applies
challenges and rulings made straight on the contract through the same functions.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, JobEventRow
from gpumarket.coordinator.services import earnings, jobs, lifecycle
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.settlement import Challenged, Ruled, SettlementBackend
from gpumarket.errors import Conflict
from gpumarket.protocol import JobState

CHALLENGED_ON_CHAIN_BY = "challenged on-chain by "
"""The start of the reason the event follower records for a challenge it sees before the
developer's request with the developer's own reason."""

RULED_ON_CHAIN = "resolved on-chain by the arbiter"


def challenge(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    principal: Principal,
    job_id: str,
    reason: str,
    tx_hash: str | None,
) -> Job:
    """Record the developer's challenge of a COMMITTED result. The event follower may have
    seen an on-chain challenge first and recorded it with a placeholder reason: the
    developer's own reason then replaces it, so it is never lost whichever comes first."""
    with session_scope(factory) as session:
        job = jobs.get_visible(session, principal, job_id)
        if job.state == JobState.DISPUTED.value:
            job = lifecycle.load_job_for_update(session, job_id)
            keep_challengers_reason(session, job, reason)
            return jobs.with_chain_steps(job)
        if job.state != JobState.COMMITTED.value:
            raise Conflict(f"job {job_id} is {job.state}; only a COMMITTED job is challenged")
        job_ref = job.chain_job_id
    challenged = settlement.challenge(job_ref, tx_hash)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.state == JobState.COMMITTED.value:
            dispute(session, settlement, job, reason, challenged)
        else:  # the follower recorded the challenge while we asked the ledger
            keep_challengers_reason(session, job, reason)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def dispute(
    session: Session, settlement: SettlementBackend, job: Job, reason: str, challenged: Challenged
) -> None:
    """Freeze ``job``'s payment on the ledger's word; a COMMITTED job becomes DISPUTED (a
    cancelled run's disputed claim stays CANCELLED, for the arbiter)."""
    if job.state == JobState.COMMITTED.value:
        lifecycle.dispute(session, job, reason, window_checked=challenged.window_checked)
    settlement.apply_challenge(session, job, challenged)


def keep_challengers_reason(session: Session, job: Job, reason: str) -> None:
    """Put the developer's ``reason`` in place of the follower's placeholder in the job's move
    to DISPUTED; a reason the developer already gave is kept."""
    event = session.scalar(
        select(JobEventRow)
        .where(
            JobEventRow.job_id == job.id,
            JobEventRow.kind == "job",
            JobEventRow.to_state == JobState.DISPUTED.value,
        )
        .order_by(JobEventRow.id.desc())
        .limit(1)
    )
    if event is None:
        return
    head, placeholder, _challenger = event.reason.partition(CHALLENGED_ON_CHAIN_BY)
    if placeholder:
        event.reason = head + reason


def resolve(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    job_id: str,
    provider_at_fault: bool,
    note: str,
) -> Job:
    """The arbiter's ruling, on the ledger first, then in the job's record."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.state in (JobState.SETTLED.value, JobState.REFUNDED.value):
            return jobs.with_chain_steps(job)
        intent = settlement.resolve_intent(job)
    ruled = settlement.resolve(intent, provider_at_fault)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        apply_ruling(session, settlement, job, provider_at_fault, ruled, note)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def apply_ruling(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    provider_at_fault: bool,
    ruled: Ruled,
    note: str,
) -> bool:
    """Apply a ruling the ledger made: REFUNDED or SETTLED. A cancelled run whose claim was
    disputed stays CANCELLED; an upheld claim still pays its seconds."""
    if not settlement.apply_ruling(session, job, provider_at_fault, ruled):
        return False
    if job.state == JobState.DISPUTED.value:
        lifecycle.resolve(session, job, provider_at_fault, note)
    elif not provider_at_fault:
        earnings.credit_provider(session, job)
    return True
