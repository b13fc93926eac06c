"""The refunder loop: escrows of jobs that ended unpaid go back to their developers.

The lifecycle marks what the ledger owes back when a job is cancelled, expires or fails
(``settlement.refund``); this loop sends those refunds (on-chain, ``cancel``), one per job, and
records each under the job's row lock. A cancelled run whose provider sends no claim for its
seconds within a lease is refunded whole.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import lifecycle
from gpumarket.coordinator.services.settlement import SettlementBackend

log = logging.getLogger(__name__)


def send_refunds(
    factory: sessionmaker[Session], settlement: SettlementBackend, limit: int = 50
) -> int:
    """Send the refunds due; how many were recorded."""
    with session_scope(factory) as session:
        due = settlement.due_for_refund(session, limit)
    done = 0
    for job_id, ref, escrow in due:
        refunded = settlement.send_refund(ref, escrow)
        if refunded is None:
            continue
        with session_scope(factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            if settlement.apply_refund(session, job, refunded):
                done += 1
    return done
