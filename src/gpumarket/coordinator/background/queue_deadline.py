"""The queue-deadline loop: jobs nobody took in time expire with a refund."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background.claim import claim_and_apply
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services import lifecycle
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobState


def expire_queued(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    settlement: SettlementBackend,
    now: datetime | None = None,
) -> int:
    """QUEUED jobs past their queue deadline become EXPIRED with a refund."""

    def expire(session: Session, job: Job) -> None:
        lifecycle.expire(session, job, settlement)

    return claim_and_apply(
        factory,
        select(Job)
        .where(Job.state == JobState.QUEUED.value, Job.queue_deadline_at < (now or utcnow()))
        .limit(settings.match_batch_size),
        expire,
    )
