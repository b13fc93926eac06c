"""The coordinator's background loops.

Each tick of each pipeline is one short transaction that picks its rows with
``FOR UPDATE SKIP LOCKED`` (on PostgreSQL), so several coordinator replicas share the work
without ever processing the same job twice; on SQLite the single writer lock does the same.
A pipeline that hits an error logs it and tries again on the next tick; one whose dependency
is out of reach (the chain's RPC endpoint) backs off and logs the outage once (``backoff``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from anyio import to_thread
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background.backoff import OutageBackoff
from gpumarket.coordinator.background.notifier import Notifier
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import rowcount, session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import lifecycle, matching, onchain
from gpumarket.coordinator.services.chain import ChainSettlement
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec, JobState

log = logging.getLogger(__name__)

MATCHER_KEY = "__matcher__"
MIN_WAKE_SPACING_SECONDS = 0.05
MAX_BATCHES_PER_TICK = 20


def match_queued(
    factory: sessionmaker[Session], settings: CoordinatorSettings, now: datetime | None = None
) -> list[str]:
    """Assign due QUEUED jobs to their best offer; returns the providers that got work."""
    return _match_batch(factory, settings, now or utcnow())[0]


def _match_batch(
    factory: sessionmaker[Session], settings: CoordinatorSettings, now: datetime
) -> tuple[list[str], int]:
    """One batch of :func:`match_queued`; also says how many due jobs it took (a full batch
    means more may be waiting)."""
    winners: list[str] = []
    with session_scope(factory) as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.state == JobState.QUEUED.value, Job.next_match_at <= now)
            .order_by(Job.next_match_at, Job.created_at)
            .limit(settings.match_batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            spec = JobSpec.model_validate(job.spec)
            winner = _assign_best(
                session,
                job,
                matching.Requirements.from_spec(spec, job.excluded_provider_ids),
                settings,
                now,
            )
            if winner is None and lifecycle.may_retry_excluded(job, now, settings):
                # no one else takes it: those that failed it try again, up to max_attempts
                winner = _assign_best(
                    session, job, matching.Requirements.from_spec(spec), settings, now
                )
            if winner is not None:
                winners.append(winner)
            else:
                job.match_failures += 1
                backoff = lifecycle.match_backoff_seconds(job.match_failures)
                job.next_match_at = now + timedelta(seconds=backoff)
    return winners, len(jobs)


def _assign_best(
    session: Session,
    job: Job,
    req: matching.Requirements,
    settings: CoordinatorSettings,
    now: datetime,
) -> str | None:
    """Assign ``job`` to the best offer meeting ``req``; returns its provider, or None."""
    for _ in range(3):  # a lost race for the best offer tries the next best
        found = matching.find_best_offer(session, req, now, settings)
        if found is None:
            return None
        offer, provider = found
        gpu_uuids = matching.reserve(session, job, offer, provider, req)
        if gpu_uuids is not None:
            lifecycle.assign(session, job, offer, provider, gpu_uuids, settings, now)
            return provider.id
        session.expire_all()
    return None


def requeue_expired_leases(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    settlement: SettlementBackend,
    now: datetime | None = None,
) -> int:
    """ASSIGNED jobs not acknowledged and RUNNING jobs whose provider went silent go back to
    the queue (or fail after ``max_attempts``)."""
    now = now or utcnow()
    count = 0
    with session_scope(factory) as session:
        jobs = session.scalars(
            select(Job)
            .where(
                Job.state.in_([JobState.ASSIGNED.value, JobState.RUNNING.value]),
                Job.lease_expires_at < now,
            )
            .limit(settings.match_batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            reason = (
                f"provider {job.provider_id} did not acknowledge the assignment in time"
                if job.state == JobState.ASSIGNED.value
                else f"provider {job.provider_id} went silent (lease expired)"
            )
            lifecycle.requeue_or_fail(
                session, job, reason, settlement, settings, blame_provider=True
            )
            count += 1
    return count


def expire_queued(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    settlement: SettlementBackend,
    now: datetime | None = None,
) -> int:
    """QUEUED jobs past their queue deadline become EXPIRED with a refund."""
    now = now or utcnow()
    with session_scope(factory) as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.state == JobState.QUEUED.value, Job.queue_deadline_at < now)
            .limit(settings.match_batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            lifecycle.expire(session, job, settlement)
        return len(jobs)


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


def finalize_committed(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    settlement: SettlementBackend,
    now: datetime | None = None,
) -> int:
    """COMMITTED jobs whose challenge window has passed are SETTLED and the provider paid."""
    now = now or utcnow()
    with session_scope(factory) as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.state == JobState.COMMITTED.value, Job.challenge_deadline <= now)
            .limit(settings.match_batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            lifecycle.finalize(session, job, settlement)
        return len(jobs)


class Pipelines:
    """Runs every pipeline on its own asyncio task with jittered intervals."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: CoordinatorSettings,
        settlement: SettlementBackend,
        notifier: Notifier,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.settlement = settlement
        self.notifier = notifier
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops on the running event loop."""
        interval = self.settings.loop_interval_seconds
        self._tasks = [
            asyncio.create_task(self._loop("matcher", self._match, interval, wake=MATCHER_KEY)),
            asyncio.create_task(self._loop("leases", self._leases, interval)),
            asyncio.create_task(self._loop("queue-deadline", self._expire, interval * 5)),
            asyncio.create_task(self._loop("liveness", self._offline, interval * 5)),
        ]
        if isinstance(self.settlement, ChainSettlement):
            self._tasks.append(asyncio.create_task(self._loop("chain", self._chain, interval)))
        else:
            self._tasks.append(
                asyncio.create_task(self._loop("finalizer", self._finalize, interval))
            )

    async def stop(self) -> None:
        """Cancel the loops and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def wake_matcher(self) -> None:
        """Run the matcher now instead of at its next tick (after a submit or a heartbeat)."""
        self.notifier.notify(MATCHER_KEY)

    async def _loop(
        self, name: str, tick: Callable[[], object], interval: float, wake: str | None = None
    ) -> None:
        """Run ``tick`` every ``interval`` (jittered) until cancelled. While a dependency is
        out of reach (the chain's RPC endpoint, a dropped database connection) the tries back off
        exponentially and the outage is logged once when it begins and once when it ends
        (see :mod:`.backoff`); any other failure is logged with its traceback."""
        outage = OutageBackoff(name, interval, log)
        while True:
            backoff: float | None = None
            try:
                await to_thread.run_sync(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = outage.failed(exc)
                if backoff is None:
                    log.exception("background pipeline %s failed; retrying next tick", name)
            else:
                outage.succeeded()
            if backoff is not None:
                await asyncio.sleep(backoff)  # wake-ups would only hit the outage sooner
                continue
            delay = interval * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
            if wake is not None:
                # a burst of wake-ups (submissions, heartbeats) coalesces into one tick
                await asyncio.sleep(MIN_WAKE_SPACING_SECONDS)
                await self.notifier.wait(wake, delay)
            else:
                await asyncio.sleep(delay)

    def _match(self) -> None:
        # Drain a backlog in consecutive short transactions (each a batch), so a burst of
        # submissions is matched at once instead of one batch per tick.
        for _ in range(MAX_BATCHES_PER_TICK):
            winners, taken = _match_batch(self.factory, self.settings, utcnow())
            for provider_id in winners:
                self.notifier.notify(provider_id)
            if taken < self.settings.match_batch_size:
                break

    def _leases(self) -> None:
        if requeue_expired_leases(self.factory, self.settings, self.settlement):
            self.wake_matcher()

    def _expire(self) -> None:
        expire_queued(self.factory, self.settings, self.settlement)

    def _offline(self) -> None:
        mark_offline(self.factory, self.settings)

    def _finalize(self) -> None:
        finalize_committed(self.factory, self.settings, self.settlement)

    def _chain(self) -> None:
        assert isinstance(self.settlement, ChainSettlement)
        onchain.tick(self.factory, self.settlement, self.settings)
