"""The resume loop: finish what a crash or an outage interrupted midway through a money step.

First the ledger confirms every transaction left without a receipt (re-sending the very same
signed bytes); then orders and claims that a request recorded but never finished are sent
again, and the outbox's keys turn each repeat into the first call's outcome.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import lifecycle, orders, results
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import GpumarketError

log = logging.getLogger(__name__)

STALE_INTENT_SECONDS = 30.0
"""An intent this old with no outcome is a crash's leftover, not a request still in flight."""


def resume_intents(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
    stale_after: float = STALE_INTENT_SECONDS,
) -> int:
    """Confirm the ledger's unconfirmed sends, then finish the stale orders and claims."""
    settlement.resume()
    with session_scope(factory) as session:
        order_intents, claim_intents = settlement.stale_intents(
            session, utcnow() - timedelta(seconds=stale_after)
        )
    for job_id, intent in order_intents:
        try:
            opened = settlement.open(intent)
        except GpumarketError as exc:
            if settlement.order_landed(intent):
                continue  # opened in a batch whose answer was lost: its event will say so
            log.warning("the order of job %s can no longer be opened: %s", job_id, exc)
            with session_scope(factory) as session:
                settlement.drop_order(session, lifecycle.load_job_for_update(session, job_id))
            continue
        orders.apply_opened(factory, settlement, job_id, opened)
    for job_id, intent in claim_intents:
        try:
            committed = settlement.commit(intent)
        except GpumarketError as exc:
            log.warning("the result of job %s cannot be committed: %s", job_id, exc)
            if exc.status_code < 500:  # refused: the provider reports again once it can
                with session_scope(factory) as session:
                    settlement.drop_claim(session, lifecycle.load_job_for_update(session, job_id))
            continue
        results.apply_committed(factory, settlement, job_id, committed, settings)
    return len(order_intents) + len(claim_intents)
