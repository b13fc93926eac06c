"""The event follower loop: reconcile jobs with what others did on the ledger.

A developer's challenge sent straight to the contract, a ruling made there, a job someone else
finalized, an escrow expired after its order's deadline, and an open or a commit sent in a
batch whose answer a crash lost: each arrives as a ledger event and is applied through the
same functions as the request path. The next block to read moves in the same transaction as
what the events changed, so a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import finalizer, verifier
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import disputes, lifecycle, orders, results
from gpumarket.coordinator.services.settlement import (
    Challenged,
    Committed,
    Extended,
    Finalized,
    LedgerEvent,
    Opened,
    Payout,
    Refunded,
    Ruled,
    SettlementBackend,
)
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import GpumarketError
from gpumarket.protocol import ChainState, JobState, VerificationState

log = logging.getLogger(__name__)

NEW_PROVIDER_SECONDS = 600.0
"""A provider registered this recently without a known stake is looked up on the ledger (its
stake may predate its registration, so no event will tell us)."""


def follow_events(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
    max_blocks: int = 2000,
) -> int:
    """Apply the ledger's new events to their jobs; how many changed something."""
    applied = 0
    with session_scope(factory) as session:
        start = settlement.event_cursor(session)
    # the chain is read with no transaction open (a slow RPC endpoint never holds a lock)
    events, stakes_moved, next_block = settlement.events(start, max_blocks)
    with session_scope(factory) as session:
        if settlement.event_cursor(session) != start:
            return 0  # another follower moved on meanwhile: its transaction applied these
        for event in events:
            job = session.scalar(
                select(Job).where(Job.chain_job_id == event.job_ref).with_for_update()
            )
            if job is None or event.name not in HANDLERS:
                continue
            if event.name in ("Settled", "Resolved") and job.provider_id is not None:
                provider = session.get(Provider, job.provider_id)
                if provider is not None:
                    stakes_moved.add(provider.address)  # its lock is released or slashed
            try:
                with session.begin_nested():
                    applied += HANDLERS[event.name](session, settlement, job, event, settings)
            except GpumarketError as exc:  # one odd job never stalls the others
                log.warning("event %s of job %s left as is: %s", event.name, job.id, exc)
        settlement.save_event_cursor(session, next_block)
    refresh_stakes(factory, settlement, stakes_moved)
    return applied


def refresh_stakes(
    factory: sessionmaker[Session], settlement: SettlementBackend, addresses: set[str]
) -> None:
    """Copy providers' free stake from the ledger into ``providers.stake_micros``, which
    matching compares with the minimum a result locks."""
    since = utcnow() - timedelta(seconds=NEW_PROVIDER_SECONDS)
    with session_scope(factory) as session:
        fresh = session.scalars(
            select(Provider.address)
            .where(Provider.stake_micros == 0, Provider.registered_at > since)
            .limit(20)
        ).all()
    wanted = {a.lower() for a in addresses} | {a.lower() for a in fresh}
    if not wanted:
        return
    stakes = {address: settlement.free_stake(address) for address in wanted}
    with session_scope(factory) as session:
        # only rows whose stake changed, in a fixed order: heartbeats lock provider rows too,
        # and a sweep that rewrote unchanged rows in any order deadlocked with them
        for address, stake in sorted(stakes.items()):
            session.execute(
                update(Provider)
                .where(Provider.address == address, Provider.stake_micros != stake)
                .values(stake_micros=stake)
                .execution_options(synchronize_session=False)
            )


def _on_opened(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """An order opened in a batch whose answer a crash (or an RPC outage) lost."""
    before = job.chain_state
    orders.queue_if_opened(session, settlement, job, Opened(event.receipt))
    return job.chain_state != before


def _on_committed(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """A claim committed in a batch whose answer was lost (recorded already, usually)."""
    committed = Committed(
        event.receipt,
        amount_micros=int(event.args["amount"]),
        window_end=datetime.fromtimestamp(int(event.args["windowEnd"]), UTC),
    )
    return results.commit_if_recorded(session, settlement, job, committed, settings)


def _on_challenged(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """A developer's challenge sent straight to the contract (or the market's own, whose
    answer a crash lost)."""
    if job.chain_state != ChainState.COMMITTED.value:
        return False
    if job.verification == VerificationState.DISPUTED.value:
        reason = verifier.MARKET_CHALLENGE
    else:  # a placeholder until the developer's request brings its reason
        reason = f"{disputes.CHALLENGED_ON_CHAIN_BY}{event.args['challenger']}"
    disputes.dispute(session, settlement, job, reason, Challenged(event.receipt, True))
    return True


def _on_settled(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """A payout: the arbiter ruled for the provider, or someone finalized the job."""
    payout = Payout.from_settled(event.args)
    if job.chain_state == ChainState.DISPUTED.value:
        ruled = Ruled(event.receipt, payout=payout, refund_micros=None)
        return disputes.apply_ruling(
            session, settlement, job, False, ruled, disputes.RULED_ON_CHAIN
        )
    assert job.chain_job_id is not None
    finalized = Finalized(event.receipt, {job.chain_job_id: payout})
    return finalizer.settle(session, settlement, job, job.chain_job_id, finalized)


def _on_cancelled(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """An escrow returned on the ledger (ours, or expired after its order's deadline)."""
    refunded = Refunded(event.receipt, int(event.args["refund"]))
    if not settlement.apply_refund(session, job, refunded):
        return False
    reason = "the order's deadline passed and its escrow was returned on-chain"
    if job.state == JobState.QUEUED.value:
        lifecycle.expire(session, job, settlement, reason)
    elif not JobState(job.state).is_terminal:
        lifecycle.fail(session, job, reason, settlement)
    return True


def _on_resolved(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """The ruling itself: its money follows in ``Refunded`` or ``Settled``."""
    return False


def _on_refunded(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """The arbiter ruled against the provider straight on the contract."""
    ruled = Ruled(event.receipt, payout=None, refund_micros=int(event.args["amount"]))
    return disputes.apply_ruling(session, settlement, job, True, ruled, disputes.RULED_ON_CHAIN)


def _on_window_extended(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    event: LedgerEvent,
    settings: CoordinatorSettings,
) -> bool:
    """A window extended for a re-run (the verifier loop's, whose answer a crash lost)."""
    end = int(event.args["windowEnd"])
    if job.chain_window_end == end:
        return False
    extended = Extended(event.receipt, datetime.fromtimestamp(end, UTC), end)
    settlement.apply_extend(session, job, extended, 0)
    job.window_extended = True
    return True


EventHandler = Callable[[Session, SettlementBackend, Job, LedgerEvent, CoordinatorSettings], bool]
"""Applies one ledger event to its job; True when it changed something."""

HANDLERS: dict[str, EventHandler] = {
    "JobOpened": _on_opened,
    "ResultCommitted": _on_committed,
    "Challenged": _on_challenged,
    "Settled": _on_settled,
    "Cancelled": _on_cancelled,
    "Resolved": _on_resolved,
    "Refunded": _on_refunded,
    "WindowExtended": _on_window_extended,
}
