"""The coordinator's background loops, each on its own asyncio task (one module per loop).

Every replica runs the loops whose rows it claims with ``FOR UPDATE SKIP LOCKED``
(:mod:`.claim`): the matcher, lease expiry, queue deadlines and provider liveness. The money
loops (finalizer, refunder, event follower, resume after a crash) run in one replica at a time:
the one holding the settlement lease (:mod:`gpumarket.coordinator.services.leases`), which it
renews every third of its TTL. When that replica dies another takes the lease over once it
expires, and its resume loop confirms whatever the dead one left in the shared outbox.

A loop whose tick keeps failing backs off exponentially with jitter instead of retrying every
tick (:mod:`.backoff`): an outage of something it depends on is logged once when it begins and
once when it ends; a bug keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable

from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import (
    chain_resume,
    event_follower,
    finalizer,
    lease_expiry,
    liveness,
    matcher,
    queue_deadline,
    refunder,
    verifier,
)
from gpumarket.coordinator.background.backoff import OutageBackoff
from gpumarket.coordinator.background.notifier import MATCHER_KEY, Notifier
from gpumarket.coordinator.services import leases
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings

log = logging.getLogger(__name__)

MIN_WAKE_SPACING_SECONDS = 0.05
SETTLEMENT_LEASE = "settlement"
"""The lease whose holder runs the money loops."""


def replica_name() -> str:
    """A name for this process among the replicas (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Pipelines:
    """Runs every loop on its own asyncio task with jittered intervals."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: CoordinatorSettings,
        settlement: SettlementBackend,
        notifier: Notifier,
        holder: str | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.settlement = settlement
        self.notifier = notifier
        self.holder = holder or replica_name()
        self._lease_until = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops on the running event loop."""
        interval = self.settings.loop_interval_seconds
        ttl = self.settings.settlement_lease_seconds
        loops: list[tuple[str, Callable[[], object], float, str | None]] = [
            ("matcher", self._match, interval, MATCHER_KEY),
            ("leases", self._leases, interval, None),
            ("queue-deadline", self._expire, interval * 5, None),
            ("liveness", self._offline, interval * 5, None),
            ("settlement-lease", self.renew_lease, ttl / 3, None),
            ("finalizer", self._finalize, interval, None),
            ("refunder", self._refund, interval, None),
            ("verifier", self._verify, interval, None),
            ("event-follower", self._follow, interval, None),
            ("chain-resume", self._resume, interval * 5, None),
        ]
        self._tasks = [
            asyncio.create_task(self._loop(name, tick, every, wake=wake))
            for name, tick, every, wake in loops
        ]

    async def stop(self) -> None:
        """Cancel the loops, wait for them to end and hand the lease to another replica."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.holds_lease():
            self._lease_until = 0.0
            try:
                await to_thread.run_sync(
                    leases.release, self.factory, SETTLEMENT_LEASE, self.holder
                )
            except Exception:  # the database is gone: the lease simply expires
                log.warning("could not release the settlement lease; it expires by itself")

    def holds_lease(self) -> bool:
        """Whether this replica runs the money loops now (its lease is safely unexpired)."""
        return time.monotonic() < self._lease_until

    def renew_lease(self) -> None:
        """Take or renew the settlement lease; a replica that cannot stops its money loops
        before the lease could have passed to another."""
        ttl = self.settings.settlement_lease_seconds
        asked = time.monotonic()
        held = leases.try_hold(self.factory, SETTLEMENT_LEASE, self.holder, ttl)
        was = self.holds_lease()
        # count from before the request: the database's expiry is at least this late
        self._lease_until = asked + ttl * 2 / 3 if held else 0.0
        if held and not was:
            log.info("this replica (%s) now runs the settlement loops", self.holder)
        elif was and not held:
            log.warning("this replica (%s) lost the settlement lease", self.holder)

    async def _loop(
        self, name: str, tick: Callable[[], object], interval: float, wake: str | None = None
    ) -> None:
        """Run ``tick`` every ``interval`` (jittered) until cancelled; failures back off."""
        outage = OutageBackoff(name, interval, log)
        while True:
            backoff: float | None = None
            try:
                await to_thread.run_sync(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = outage.failed(exc)
            else:
                outage.succeeded()
            if backoff is not None:
                await asyncio.sleep(backoff)  # wake-ups would only hit the failure sooner
                continue
            delay = interval * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
            if wake is not None:
                # a burst of wake-ups (submissions, heartbeats) coalesces into one tick
                await asyncio.sleep(MIN_WAKE_SPACING_SECONDS)
                await self.notifier.wait(wake, delay)
            else:
                await asyncio.sleep(delay)

    def _match(self) -> None:
        for provider_id in matcher.match_all(self.factory, self.settings):
            self.notifier.notify(provider_id)

    def _leases(self) -> None:
        if lease_expiry.requeue_expired_leases(self.factory, self.settings, self.settlement):
            self.notifier.wake_matcher()

    def _expire(self) -> None:
        queue_deadline.expire_queued(self.factory, self.settings, self.settlement)

    def _offline(self) -> None:
        liveness.mark_offline(self.factory, self.settings)

    def _finalize(self) -> None:
        if self.holds_lease():
            finalizer.finalize_due(self.factory, self.settlement, self.settings)

    def _refund(self) -> None:
        if self.holds_lease():
            refunder.send_refunds(self.factory, self.settlement)

    def _verify(self) -> None:
        if self.holds_lease():
            verifier.verify_tick(self.factory, self.settlement, self.settings)

    def _follow(self) -> None:
        if self.holds_lease():
            event_follower.follow_events(self.factory, self.settlement, self.settings)

    def _resume(self) -> None:
        if self.holds_lease():
            chain_resume.resume_intents(self.factory, self.settlement, self.settings)
