"""The off-chain ledger: accounts in the coordinator's database only.

No escrow exists outside the database, so each ledger call answers at once and records
nothing of its own; the amounts, fees and timestamps are still computed and recorded on the job
by the lifecycle, so switching to the chain changes who holds the money, not the figures. This
is what a single-machine trial needs. Several replicas share it safely: every step runs under
the job's row lock like any other transition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services import earnings
from gpumarket.coordinator.services.settlement import (
    Challenged,
    Committed,
    Extended,
    Finalized,
    LedgerEvent,
    MarketTerms,
    Opened,
    Refunded,
    RerunIntent,
    Ruled,
    SettlementHealth,
    StepReceipt,
)
from gpumarket.errors import InvalidTransition, NotFound
from gpumarket.protocol import ChainInfo, JobSpec, JobState, ResultReport

log = logging.getLogger(__name__)

NO_CONTRACT = "this coordinator keeps accounts off-chain; there is no market contract"
NONE = StepReceipt()


class OffchainSettlement:
    """:class:`~gpumarket.coordinator.services.settlement.SettlementBackend` in the database."""

    name = "offchain"

    def fund_on_submit(self, session: Session, job: Job, spec: JobSpec) -> bool:
        """Every job is funded at once: there is no order to sign."""
        return True

    def order_intent(self, session: Session, job: Job, owner_address: str, signature: str) -> Any:
        """There are no orders off-chain."""
        raise NotFound(NO_CONTRACT)

    def open(self, intent: Any) -> Opened:
        """Never reached (see :meth:`order_intent`)."""
        raise NotFound(NO_CONTRACT)

    def drop_order(self, session: Session, job: Job) -> None:
        """Nothing was recorded."""

    def drop_claim(self, session: Session, job: Job) -> None:
        """Nothing was recorded."""

    def apply_open(self, session: Session, job: Job, opened: Opened) -> bool:
        """Queue it (a job is funded at submission)."""
        return True

    def order_landed(self, intent: Any) -> bool:
        """There are no orders off-chain."""
        return False

    def takes_late_claim(self, job: Job) -> bool:
        """A cancelled run was paid its seconds at the cancel."""
        return False

    def has_claim(self, job: Job) -> bool:
        """Only the lifecycle's COMMITTED says so (checked by the caller)."""
        return False

    def claim_intent(
        self, session: Session, job: Job, report: ResultReport, provider_address: str
    ) -> Any:
        """The coordinator bills the seconds itself: the report is the whole claim."""
        return report

    def commit(self, intent: Any) -> Committed:
        """The window is the coordinator's own and the amount its own bill."""
        return Committed(NONE, report=intent)

    def apply_commit(self, session: Session, job: Job, committed: Committed) -> ResultReport | None:
        """The lifecycle's commit is the whole record."""
        return committed.report if job.state == JobState.RUNNING.value else None

    def challenge(self, job_ref: str | None, tx_hash: str | None) -> Challenged:
        """Accepted here; the lifecycle checks the window on the coordinator's clock."""
        return Challenged(NONE, window_checked=False)

    def apply_challenge(self, session: Session, job: Job, challenged: Challenged) -> None:
        """The lifecycle's move to DISPUTED is the whole record."""

    def resolve_intent(self, job: Job) -> Any:
        """Only a DISPUTED job is ruled on."""
        if job.state != JobState.DISPUTED.value:
            raise InvalidTransition(f"job {job.id} is {job.state}; only a DISPUTED job is resolved")
        return None

    def resolve(self, intent: Any, provider_at_fault: bool) -> Ruled:
        """The ruling moves no money outside the database."""
        return Ruled(NONE, payout=None, refund_micros=None)

    def apply_ruling(self, session: Session, job: Job, at_fault: bool, ruled: Ruled) -> bool:
        """The lifecycle's resolve is the whole record."""
        return job.state == JobState.DISPUTED.value

    def due_for_finalize(self, session: Session, now: float, limit: int) -> list[tuple[str, str]]:
        """COMMITTED jobs whose window has passed on the coordinator's clock (rows locked,
        skipped when another replica holds them). Verification runs are paid by the verifier
        loop instead, once the verdict is in."""
        deadline = datetime.fromtimestamp(now, UTC)
        rows = session.scalars(
            select(Job.id)
            .where(
                Job.state == JobState.COMMITTED.value,
                Job.challenge_deadline <= deadline,
                Job.verifies_job_id.is_(None),
            )
            .order_by(Job.challenge_deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [(job_id, job_id) for job_id in rows]

    def finalize(self, refs: Sequence[str]) -> Finalized:
        """Nothing to send: the lifecycle pays from the job's own figures."""
        return Finalized(NONE)

    def apply_finalize(self, session: Session, job: Job, ref: str, finalized: Finalized) -> bool:
        """Paid when its window has passed and it is still COMMITTED."""
        return job.state == JobState.COMMITTED.value

    def refund(self, session: Session, job: Job, reason: str) -> None:
        """A run cancelled midway is paid its seconds now; the rest never left the database."""
        if job.state == JobState.RUNNING.value and job.amount_micros:
            earnings.credit_provider(session, job)
        log.debug("offchain refund for %s: %s", job.id, reason)

    def due_for_refund(self, session: Session, limit: int) -> list[tuple[str, str, int]]:
        """Nothing is owed back outside the database."""
        return []

    def send_refund(self, ref: str, escrow_micros: int) -> Refunded | None:
        """Never reached (nothing is due)."""
        return None

    def apply_refund(self, session: Session, job: Job, refunded: Refunded) -> bool:
        """Never reached (nothing is due)."""
        return False

    def resume(self) -> None:
        """Nothing is ever left half-sent."""

    def stale_intents(
        self, session: Session, older_than: datetime
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """Every step finishes in its request."""
        return [], []

    def event_cursor(self, session: Session) -> int:
        """There are no events to follow."""
        return 0

    def save_event_cursor(self, session: Session, next_block: int) -> None:
        """There are no events to follow."""

    def events(self, start: int, max_blocks: int) -> tuple[list[LedgerEvent], set[str], int]:
        """Nobody else acts on this ledger."""
        return [], set(), start

    def check_rerun_claim(
        self, parent: Job, run: Job, report: ResultReport, runner_address: str
    ) -> None:
        """There are no signed claims off-chain."""

    def extend_window(self, job_ref: str | None, seconds: int) -> Extended:
        """The coordinator's own window moves (in :meth:`apply_extend`)."""
        return Extended(NONE)

    def apply_extend(self, session: Session, job: Job, extended: Extended, seconds: int) -> None:
        """Move the coordinator's window."""
        if job.challenge_deadline is not None:
            job.challenge_deadline += timedelta(seconds=seconds)

    def verifier_challenge(self, job_ref: str | None) -> Challenged:
        """Accepted at once; the lifecycle checks the window."""
        return Challenged(NONE, window_checked=False)

    def pay_rerun(self, intent: RerunIntent) -> StepReceipt:
        """Nothing to send: the re-runner's earnings are credited when it is applied."""
        return NONE

    def free_stake(self, address: str) -> int:
        """Results lock no stake off-chain."""
        return 0

    def chain_time(self) -> float:
        """The coordinator's clock."""
        return time.time()

    def mined_at(self, tx_hash: str) -> StepReceipt:
        """No transactions off-chain."""
        return NONE

    def health(self) -> SettlementHealth | None:
        """Nothing outside the database to watch."""
        return None

    def info(self) -> ChainInfo:
        """There is no contract."""
        raise NotFound(NO_CONTRACT)

    def market_terms(self) -> MarketTerms:
        """Results lock no stake; the premium is the coordinator's setting."""
        return MarketTerms()

    def set_fee(self, fee_bps: int, burn_bps: int | None) -> str:
        """The off-chain fee is the coordinator's GPUMARKET_FEE_BPS setting."""
        raise NotFound(NO_CONTRACT)

    def set_paused(self, paused: bool) -> str:
        """There is no contract to pause."""
        raise NotFound(NO_CONTRACT)

    def is_paused(self) -> bool:
        """Never paused."""
        return False
