"""The liveness loop: providers without a fresh heartbeat go offline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import rowcount, session_scope
from gpumarket.coordinator.db.models import Provider
from gpumarket.coordinator.services import matching
from gpumarket.coordinator.settings import CoordinatorSettings


def mark_offline(
    factory: sessionmaker[Session], settings: CoordinatorSettings, now: datetime | None = None
) -> int:
    """Providers without a fresh heartbeat go offline (their leases then run out by themselves)."""
    now = now or utcnow()
    with session_scope(factory) as session:
        return rowcount(
            session.execute(
                update(Provider)
                .where(
                    Provider.online.is_(True),
                    Provider.last_heartbeat_at < matching.heartbeat_cutoff(now, settings),
                )
                .values(online=False)
                .execution_options(synchronize_session=False)
            )
        )
