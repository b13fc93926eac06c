"""The developer's signed order: the money step that funds a job (SUBMITTED -> QUEUED).

Intent, ledger call, apply (see :mod:`.settlement`): the order is checked and recorded under
the job's row lock, opened on the ledger with no transaction open, and the job queued in a
second short transaction. A crash between them leaves the order recorded; the resume loop
(:mod:`gpumarket.coordinator.background.chain_resume`) sends it again and the outbox's key
turns the repeat into the first call's outcome.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Developer, Job
from gpumarket.coordinator.services import jobs, lifecycle, verification
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.settlement import Opened, SettlementBackend
from gpumarket.errors import GpumarketError
from gpumarket.protocol import JobSpec


def sign_order(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    principal: Principal,
    job_id: str,
    signature: str,
) -> Job:
    """Fund ``job_id`` with its developer's signed order and queue it."""
    with session_scope(factory) as session:
        jobs.get_visible(session, principal, job_id)
        job = lifecycle.load_job_for_update(session, job_id)
        owner = session.get(Developer, job.owner_id)
        assert owner is not None
        intent = settlement.order_intent(session, job, owner.address, signature)
        if intent is None:
            return jobs.with_chain_steps(job)
    try:
        opened = settlement.open(intent)
    except GpumarketError:
        with session_scope(factory) as session:
            settlement.drop_order(session, lifecycle.load_job_for_update(session, job_id))
        raise
    return apply_opened(factory, settlement, job_id, opened)


def apply_opened(
    factory: sessionmaker[Session], settlement: SettlementBackend, job_id: str, opened: Opened
) -> Job:
    """Record an open escrow in its own transaction (the request, or the resume loop)."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        queue_if_opened(session, settlement, job, opened)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def queue_if_opened(
    session: Session, settlement: SettlementBackend, job: Job, opened: Opened
) -> bool:
    """Apply ``opened`` to ``job`` and queue it when the ledger says so."""
    if not settlement.apply_open(session, job, opened):
        return False
    lifecycle.queue(session, job, JobSpec.model_validate(job.spec), settlement.name)
    verification.start_replicas(session, job)
    return True
