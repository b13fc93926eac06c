"""The lease loop: jobs whose provider stopped answering go back to the queue."""

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


def requeue_expired_leases(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    settlement: SettlementBackend,
    now: datetime | None = None,
) -> int:
    """ASSIGNED jobs not acknowledged and RUNNING jobs whose provider went silent go back to
    the queue (or fail after ``max_attempts``)."""

    def requeue(session: Session, job: Job) -> None:
        reason = (
            f"provider {job.provider_id} did not acknowledge the assignment in time"
            if job.state == JobState.ASSIGNED.value
            else f"provider {job.provider_id} went silent (lease expired)"
        )
        lifecycle.requeue_or_fail(session, job, reason, settlement, settings, blame_provider=True)

    return claim_and_apply(
        factory,
        select(Job)
        .where(
            Job.state.in_([JobState.ASSIGNED.value, JobState.RUNNING.value]),
            Job.lease_expires_at < (now or utcnow()),
        )
        .limit(settings.match_batch_size),
        requeue,
    )
