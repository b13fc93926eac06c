"""Named duties that exactly one coordinator replica performs at a time.

The chain sender's reconciliation loops (finalizer, refunder, event follower, resume after a
crash) must run in one replica only. The replica holding the duty's :class:`~..models.Lease`
row renews it well before it expires; a replica that dies stops renewing, and once the row
expires the next replica asking takes it over (within the TTL plus one renewal interval).
Taking and renewing are one conditional UPDATE each, so two replicas never both hold it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import rowcount, session_scope
from gpumarket.coordinator.db.models import Lease


def try_hold(factory: sessionmaker[Session], name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while another replica holds an
    unexpired one."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    with session_scope(factory) as session:
        taken = rowcount(
            session.execute(
                update(Lease)
                .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
                .values(holder=holder, expires_at=expires)
                .execution_options(synchronize_session=False)
            )
        )
        if taken:
            return True
        if session.get(Lease, name) is not None:
            return False
        try:
            with session.begin_nested():
                session.add(Lease(name=name, holder=holder, expires_at=expires))
        except IntegrityError:  # another replica created it first
            return False
        return True


def release(factory: sessionmaker[Session], name: str, holder: str) -> None:
    """Give the lease up at a clean shutdown, so another replica need not wait for it to
    expire."""
    with session_scope(factory) as session:
        session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )


def holder_of(factory: sessionmaker[Session], name: str) -> str | None:
    """Who holds ``name`` now (None when nobody does or it expired)."""
    with session_scope(factory) as session:
        lease = session.get(Lease, name)
        if lease is None or lease.expires_at < utcnow():
            return None
        return lease.holder
