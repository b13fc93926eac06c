"""The one seam between jobs and money: the settlement backend.

Every money step of a job is the same three parts whichever ledger keeps the money: a short
database transaction that checks the request and records its *intent*, the ledger call with no
database transaction open, and a short transaction that *applies* the ledger's answer. The
request-path services (``orders``, ``results``, ``disputes``) and the reconciliation loops in
``background/`` string the parts together and call the lifecycle once, at the end; the backend
implements the parts. The coordinator builds one backend at start-up
(:func:`gpumarket.coordinator.app.create_app`) and nothing else asks which one it has:

- :class:`~gpumarket.coordinator.services.offchain.OffchainSettlement` keeps the accounts in
  the coordinator's database only (a single-machine trial): its ledger calls answer at once;
- the chain backend (:mod:`gpumarket.coordinator.services.chain_backend`) escrows each job in
  the market contract, sending through the outbox in the shared database.

A ledger call raising :class:`~gpumarket.errors.SettlementError` (or a refusal naming what to
fix) stops the step before anything is applied, so a job never claims a payment state the
ledger does not have. Every call is idempotent by job: repeating one repeats its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from gpumarket.coordinator.db.models import Job
from gpumarket.protocol import ChainInfo, JobSpec, ResultReport


@dataclass(frozen=True)
class StepReceipt:
    """What a ledger call left behind: its transaction, block and this job's share of the gas
    (all None off-chain, where nothing is sent)."""

    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None


@dataclass(frozen=True)
class Payout:
    """Where a settled claim's money went, in micros."""

    provider_paid: int
    fee: int
    burned: int
    refund: int

    @classmethod
    def from_settled(cls, args: dict[str, Any]) -> Payout:
        """The money of the market's ``Settled`` event."""
        return cls(
            int(args["providerPaid"]), int(args["fee"]), int(args["burned"]), int(args["refund"])
        )


@dataclass(frozen=True)
class Opened:
    """A funded order: the job may be queued."""

    receipt: StepReceipt


@dataclass(frozen=True)
class Committed:
    """A committed claim. ``amount_micros`` is the signed claim (None: the coordinator bills
    the seconds itself); ``window_end`` is the ledger's own challenge deadline (None: the
    coordinator's window)."""

    receipt: StepReceipt
    amount_micros: int | None = None
    window_end: datetime | None = None
    report: ResultReport | None = None


@dataclass(frozen=True)
class Challenged:
    """A challenge the ledger accepted. ``window_checked``: the ledger enforced the window
    itself (the contract does; off-chain the lifecycle checks it)."""

    receipt: StepReceipt
    window_checked: bool


@dataclass(frozen=True)
class Ruled:
    """The arbiter's ruling as the ledger applied it: what the provider got (None when the
    ruling went against it) and what went back."""

    receipt: StepReceipt
    payout: Payout | None
    refund_micros: int | None


@dataclass(frozen=True)
class Finalized:
    """One finalize call over several jobs: the payout of each job it paid, by job id."""

    receipt: StepReceipt
    paid: dict[str, Payout] = field(default_factory=dict)


@dataclass(frozen=True)
class Refunded:
    """An escrow returned to the developer (None amount: the ledger returned it earlier)."""

    receipt: StepReceipt
    amount_micros: int | None


@dataclass(frozen=True)
class Extended:
    """A challenge window the verifier extended for a re-run: its new end (None off-chain,
    where the coordinator's own window moves)."""

    receipt: StepReceipt
    window_end: datetime | None = None
    chain_window_end: int | None = None


@dataclass(frozen=True)
class RerunIntent:
    """A verification run to pay: the job it re-ran (its ledger reference), the re-runner's
    address and its signed claim (None off-chain)."""

    run_id: str
    parent_ref: str | None
    runner_address: str
    amount_micros: int
    result_hash: str | None = None
    signature: str | None = None


@dataclass(frozen=True)
class MarketTerms:
    """What the ledger's own terms fix for matching and pricing: the stake a result locks at
    least and its multiple of the amount, and the premium a sampled job pays (None: the
    coordinator's setting, off-chain)."""

    min_stake_micros: int = 0
    stake_multiple: int = 0
    premium_bps: int | None = None


@dataclass(frozen=True)
class LedgerEvent:
    """Something done on the ledger by someone else (the developer's own challenge, a ruling
    made straight on the contract, an expired escrow), or a step whose answer a crash lost.
    ``name`` is the contract's event name; ``args`` its decoded arguments."""

    name: str
    job_ref: str
    args: dict[str, Any]
    receipt: StepReceipt


@dataclass(frozen=True)
class SettlementHealth:
    """What an operator watches on the ledger side (``/metrics``): whether it answers, its
    latest block, the gas money left on the coordinator's account, transactions awaiting a
    receipt."""

    up: bool
    block: int | None
    sender_balance_wei: int | None
    outbox_pending: int


class SettlementBackend(Protocol):
    """Every money step of a job, as intent / ledger call / apply. See the module docstring."""

    name: str

    # ---------------------------------------------------------------- submission and open
    def fund_on_submit(self, session: Session, job: Job, spec: JobSpec) -> bool:
        """A new job: True when it is funded at once (queue it now); False when it waits for
        the developer's signed order (its payment request is set on the job)."""

    def order_intent(self, session: Session, job: Job, owner_address: str, signature: str) -> Any:
        """Check the developer's signed order for ``job`` and record it; the intent to
        :meth:`open` (None: the escrow is open already). Raises NotFound when this ledger
        takes no orders."""

    def open(self, intent: Any) -> Opened:
        """Lock the job's escrow (ledger call; no database transaction open)."""

    def drop_order(self, session: Session, job: Job) -> None:
        """Forget a recorded order the ledger refused (the developer may sign again)."""

    def drop_claim(self, session: Session, job: Job) -> None:
        """Forget a recorded claim the ledger refused (the provider may report again)."""

    def apply_open(self, session: Session, job: Job, opened: Opened) -> bool:
        """Record the open escrow; True when the job is to be queued now."""

    def order_landed(self, intent: Any) -> bool:
        """Whether an order whose answer was lost is on the ledger anyway."""

    # ---------------------------------------------------------------- results
    def takes_late_claim(self, job: Job) -> bool:
        """Whether ``job`` (CANCELLED while it ran) still takes its provider's claim for the
        seconds it ran."""

    def has_claim(self, job: Job) -> bool:
        """Whether ``job``'s claim is already committed (a repeated report is answered)."""

    def claim_intent(
        self, session: Session, job: Job, report: ResultReport, provider_address: str
    ) -> Any:
        """Check the provider's result against this ledger's rules (a signed claim on-chain)
        and record it; the intent to :meth:`commit`."""

    def commit(self, intent: Any) -> Committed:
        """Commit the claim and start the challenge window (ledger call)."""

    def apply_commit(self, session: Session, job: Job, committed: Committed) -> ResultReport | None:
        """Record the committed claim; the report it settles (None: recorded already)."""

    # ---------------------------------------------------------------- disputes
    def challenge(self, job_ref: str | None, tx_hash: str | None) -> Challenged:
        """Confirm the developer's challenge on the ledger (the contract took its bond)."""

    def apply_challenge(self, session: Session, job: Job, challenged: Challenged) -> None:
        """Record the frozen payment."""

    def resolve_intent(self, job: Job) -> Any:
        """Check ``job`` awaits a ruling (Conflict otherwise); the intent to :meth:`resolve`."""

    def resolve(self, intent: Any, provider_at_fault: bool) -> Ruled:
        """The arbiter's ruling on the ledger (ledger call)."""

    def apply_ruling(self, session: Session, job: Job, at_fault: bool, ruled: Ruled) -> bool:
        """Record the ruling's money; False when it was recorded already."""

    # ---------------------------------------------------------------- finalize and refund
    def due_for_finalize(self, session: Session, now: float, limit: int) -> list[tuple[str, str]]:
        """(job id, ledger reference) of committed claims whose window has passed by ``now``
        (the ledger's clock, :meth:`chain_time`)."""

    def finalize(self, refs: Sequence[str]) -> Finalized:
        """Pay out those claims, one call for all (ledger call)."""

    def apply_finalize(self, session: Session, job: Job, ref: str, finalized: Finalized) -> bool:
        """Record ``job``'s payout; False when that call did not pay it (or it was recorded)."""

    def refund(self, session: Session, job: Job, reason: str) -> None:
        """Inside the lifecycle's transaction that ends ``job`` unpaid (cancel, expiry,
        failure): mark what the ledger owes back. A run cancelled midway has its seconds billed
        on the job: the off-chain ledger pays them at once, the chain once the provider's claim
        for them settles."""

    def due_for_refund(self, session: Session, limit: int) -> list[tuple[str, str, int]]:
        """(job id, ledger reference, escrow) of refunds marked and not yet sent."""

    def send_refund(self, ref: str, escrow_micros: int) -> Refunded | None:
        """Return the escrow (ledger call); None when it cannot be returned now."""

    def apply_refund(self, session: Session, job: Job, refunded: Refunded) -> bool:
        """Record the refund; False when it was recorded already."""

    # ---------------------------------------------------------------- reconciliation
    def resume(self) -> None:
        """Confirm whatever a crash or an outage left unconfirmed on the ledger."""

    def stale_intents(
        self, session: Session, older_than: datetime
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """(job id, intent) of the orders and claims recorded before ``older_than`` by
        requests that never finished their step (a crash between the parts)."""

    def event_cursor(self, session: Session) -> int:
        """Where the event follower reads next (kept in the database)."""

    def save_event_cursor(self, session: Session, next_block: int) -> None:
        """Move the follower's cursor, with what the events changed."""

    def events(self, start: int, max_blocks: int) -> tuple[list[LedgerEvent], set[str], int]:
        """Ledger events from ``start`` (read with no database transaction open), the
        addresses whose free stake changed, and where to read next."""

    # -- verification by re-execution (services/verification.py, background/verifier.py)

    def check_rerun_claim(
        self, parent: Job, run: Job, report: ResultReport, runner_address: str
    ) -> None:
        """A verification run's claim must be the re-runner's signature over its result for
        the job it re-runs (on-chain, it is what pays it); off-chain there is none."""
        ...

    def extend_window(self, job_ref: str | None, seconds: int) -> Extended:
        """Extend a committed job's challenge window once, so its re-run ends inside it."""
        ...

    def apply_extend(self, session: Session, job: Job, extended: Extended, seconds: int) -> None:
        """Record the window's new end."""
        ...

    def verifier_challenge(self, job_ref: str | None) -> Challenged:
        """The market's own challenge of a result a re-run disagrees with (no bond)."""
        ...

    def pay_rerun(self, intent: RerunIntent) -> StepReceipt:
        """Pay an honest re-runner from the verification pool."""
        ...

    def free_stake(self, address: str) -> int:
        """A provider's stake not locked by results in their window."""

    def chain_time(self) -> float:
        """The ledger's clock (unix seconds), which challenge windows run on."""

    def mined_at(self, tx_hash: str) -> StepReceipt:
        """Block and gas of a transaction someone else sent (for the job's receipt)."""

    # ---------------------------------------------------------------- operator
    def health(self) -> SettlementHealth | None:
        """The ledger's health figures for ``/metrics`` (None: nothing to watch)."""

    def info(self) -> ChainInfo:
        """The market and its terms, for wallets (NotFound when there is no contract)."""

    def market_terms(self) -> MarketTerms:
        """The terms money steps follow (the contract's, on-chain; none off-chain)."""

    def set_fee(self, fee_bps: int, burn_bps: int | None) -> str:
        """New terms for jobs opened from now on; the transaction hash."""

    def set_paused(self, paused: bool) -> str:
        """Stop or resume opening jobs; the transaction hash."""

    def is_paused(self) -> bool:
        """Whether the market refuses new jobs."""
