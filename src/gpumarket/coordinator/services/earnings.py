"""A provider's recorded earnings: what every ledger adds when a job pays its provider."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.models import Job, Provider


def credit_provider(session: Session, job: Job) -> None:
    """Add the job's pay (amount less fee) to its provider's recorded earnings."""
    if job.provider_id and job.amount_micros and job.fee_micros is not None:
        session.execute(
            update(Provider)
            .where(Provider.id == job.provider_id)
            .values(earned_micros=Provider.earned_micros + (job.amount_micros - job.fee_micros))
        )
