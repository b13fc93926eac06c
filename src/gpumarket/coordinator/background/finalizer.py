"""The finalizer loop: committed claims whose challenge window has passed are paid out.

Claim the due jobs (one short transaction), pay them out on the ledger in one call (the chain:
one ``finalizeMany``, or ``finalize`` for one), then apply each payout under the job's row lock
and settle it in the lifecycle. A job the ledger did not pay in that call (someone else
finalized or challenged it first) is left for the event follower.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services import earnings, lifecycle
from gpumarket.coordinator.services.settlement import Finalized, SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobState


def finalize_due(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
    now: datetime | None = None,
) -> int:
    """Pay out the claims whose window has passed by ``now`` (the ledger's clock by
    default); how many were settled."""
    clock = now.timestamp() if now is not None else settlement.chain_time()
    with session_scope(factory) as session:
        due = settlement.due_for_finalize(session, clock, settings.finalize_batch_size)
    if not due:
        return 0
    finalized = settlement.finalize([ref for _, ref in due])
    done = 0
    with session_scope(factory) as session:
        for job_id, ref in due:
            job = lifecycle.load_job_for_update(session, job_id)
            if settle(session, settlement, job, ref, finalized):
                done += 1
    return done


def settle(
    session: Session, settlement: SettlementBackend, job: Job, ref: str, finalized: Finalized
) -> bool:
    """Apply one job's payout: SETTLED, or a cancelled run's seconds paid (it stays
    CANCELLED)."""
    if not settlement.apply_finalize(session, job, ref, finalized):
        return False
    if job.state == JobState.COMMITTED.value:
        lifecycle.finalize(session, job)
    else:
        earnings.credit_provider(session, job)
    return True
