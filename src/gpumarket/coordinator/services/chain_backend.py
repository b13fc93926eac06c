"""The on-chain ledger: each job's escrow in the market contract.

The coordinator's side of each money step as intent (checked and recorded in the job's row),
ledger call (through :class:`~gpumarket.settlement.market_client.MarketClient` and the outbox
in the shared database, with no database transaction open) and apply (the job's
:mod:`chain_state` moves, recorded with the transaction). Everything web3 lives in
:mod:`gpumarket.settlement`; this module only maps between jobs and that client.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import ChainCursor, Job
from gpumarket.coordinator.services import chain_state
from gpumarket.coordinator.services.outbox_store import DatabaseOutboxStore
from gpumarket.coordinator.services.settlement import (
    Challenged,
    Committed,
    Extended,
    Finalized,
    LedgerEvent,
    MarketTerms,
    Opened,
    Payout,
    Refunded,
    RerunIntent,
    Ruled,
    SettlementHealth,
    StepReceipt,
)
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import ConfigurationError, Conflict, ContractReverted, InvalidRequest
from gpumarket.protocol import (
    ChainInfo,
    ChainState,
    JobSpec,
    JobState,
    PaymentRequest,
    ResultClaim,
    ResultReport,
    VerificationMode,
)
from gpumarket.protocol.pricing import replica_count
from gpumarket.settlement.contracts import Deployment
from gpumarket.settlement.market_client import (
    CHAIN_CANCELLED,
    CHAIN_DISPUTED,
    CHAIN_NONE,
    MarketClient,
    TxOutcome,
)
from gpumarket.settlement.outbox import SqliteOutboxStore
from gpumarket.settlement.signing import (
    Order,
    job_id_bytes,
    order_signer,
    result_hash,
    result_signer,
)

log = logging.getLogger(__name__)


def _order_intent(request: PaymentRequest, signature: str, spec: dict[str, object]) -> OrderIntent:
    """The order as the contract is to open it: a verified job (sampled or redundant, its
    escrow holds a premium) with ``openVerified`` and its replicas as copies."""
    parsed = JobSpec.model_validate(spec)
    return OrderIntent(
        request,
        signature,
        parsed.verification is not VerificationMode.OPTIMISTIC,
        replica_count(parsed),
    )


C = ChainState
ORDER_SLACK_SECONDS = 24 * 3600
"""How long an order stays valid beyond the job's own queue and run limits."""

EVENTS_CURSOR = "market-events"
STAKE_EVENTS = ("Staked", "UnstakeRequested", "ResultCommitted")


@dataclass(frozen=True)
class OrderIntent:
    """A checked order on its way to the contract."""

    request: PaymentRequest
    signature: str
    verified: bool = False
    """A sampled or redundant job: opened with ``openVerified`` (its premium goes to the
    verification pool when it settles)."""
    copies: int = 0
    """A redundant job's replicas beyond its own run (the premium pays them)."""


@dataclass(frozen=True)
class ClaimIntent:
    """A checked result claim on its way to the contract."""

    chain_job_id: str
    claim: ResultClaim


def receipt_of(outcome: TxOutcome) -> StepReceipt:
    """Our own transaction's receipt, with this job's share of a batch's gas."""
    return StepReceipt(outcome.sent.hash, outcome.sent.block, outcome.gas_share)


def set_payout(job: Job, payout: Payout) -> None:
    """Write where a settled job's money went on its receipt."""
    job.paid_micros = payout.provider_paid
    job.fee_micros = payout.fee
    job.burned_micros = payout.burned
    job.refund_micros = payout.refund


class ChainSettlement:
    """:class:`~gpumarket.coordinator.services.settlement.SettlementBackend` on the market
    contract."""

    name = "chain"

    def __init__(
        self,
        settings: CoordinatorSettings,
        factory: sessionmaker[Session],
        client: MarketClient | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.store = DatabaseOutboxStore(factory)
        self.client = client or self._connect(settings)
        self.deployment = self.client.deployment

    def _connect(self, settings: CoordinatorSettings) -> MarketClient:
        """The market client for the settings' RPC endpoint, deployment and key, sending
        through the outbox in the coordinator's database."""
        if not (settings.chain_rpc_url and settings.chain_deployment and settings.chain_key):
            raise ConfigurationError(
                "on-chain settlement needs GPUMARKET_CHAIN_RPC_URL, GPUMARKET_CHAIN_DEPLOYMENT "
                "and GPUMARKET_CHAIN_KEY together"
            )
        try:
            deployment = Deployment.from_dict(json.loads(settings.chain_deployment.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"cannot read the deployment file {settings.chain_deployment}: {exc}"
            ) from exc
        return MarketClient(
            settings.chain_rpc_url,
            deployment,
            settings.chain_key.get_secret_value(),
            self.store,
            batch_size=settings.chain_batch_size,
            receipt_timeout=settings.chain_receipt_timeout_seconds,
            public_rpc_url=settings.chain_public_rpc_url,
        )

    def adopt_file_outbox(self) -> None:
        """Move what an earlier version's per-process outbox file holds into the shared one
        (once, at start-up), so an upgrade loses no unconfirmed transaction."""
        legacy = self.settings.data_dir / "outbox.sqlite"
        if not legacy.exists():
            return
        old = SqliteOutboxStore(legacy)
        entries = old.entries()
        old.db.close()
        added = self.store.adopt(entries)
        legacy.rename(legacy.with_name(legacy.name + ".adopted"))  # adopted once, kept to read
        log.info("moved %d transactions from %s into the database outbox", added, legacy)

    # ------------------------------------------------------------ submission and open

    def fund_on_submit(self, session: Session, job: Job, spec: JobSpec) -> bool:
        """A new job waits in SUBMITTED for its developer to sign the order that funds it."""
        deadline = (
            int(time.time())
            + spec.queue_timeout_seconds
            + spec.max_duration_seconds
            + ORDER_SLACK_SECONDS
        )
        request = PaymentRequest(
            chain_id=self.deployment.chain_id,
            market=self.deployment.market,
            chain_job_id="0x" + job_id_bytes(job.id).hex(),
            spec_hash="0x" + job.spec_hash,
            max_payment_micros=job.escrow_micros,
            deadline=deadline,
            nonce=secrets.randbelow(2**63),
        )
        job.chain_job_id = request.chain_job_id
        job.payment_request = request.model_dump(mode="json")
        chain_state.advance(session, job, C.AWAITING_ORDER, "waiting for the developer's order")
        return False

    def order_intent(
        self, session: Session, job: Job, owner_address: str, signature: str
    ) -> OrderIntent | None:
        """Check the order is the job's and signed by its owner; None when already opened."""
        if job.chain_state == C.OPEN:
            return None
        if job.state != JobState.SUBMITTED.value or job.chain_state != C.AWAITING_ORDER:
            raise Conflict(f"job {job.id} is {job.state}; it takes no order now")
        assert job.payment_request is not None
        request = PaymentRequest.model_validate(job.payment_request)
        signer = order_signer(
            bytes.fromhex(signature[2:]),
            Order.from_request(request),
            request.chain_id,
            request.market,
        )
        if signer.lower() != owner_address.lower():
            raise InvalidRequest(
                f"the order is signed by {signer}, but the job belongs to {owner_address}: "
                "sign the payment request with the wallet you logged in with"
            )
        job.order_signature = signature
        job.updated_at = utcnow()  # the intent's age: the resume loop leaves a fresh one alone
        return _order_intent(request, signature, job.spec)

    def open(self, intent: OrderIntent) -> Opened:
        """Relay the order: the escrow moves from the developer's deposit into the job (a
        sampled job's with ``openVerified``, one by one: its premium is the contract's)."""
        if intent.verified:
            return Opened(
                receipt_of(
                    self.client.open_verified(intent.request, intent.signature, intent.copies)
                )
            )
        return Opened(receipt_of(self.client.open(intent.request, intent.signature)))

    def drop_order(self, session: Session, job: Job) -> None:
        """The contract refused the order: forget it (the developer may sign again)."""
        job.order_signature = None

    def drop_claim(self, session: Session, job: Job) -> None:
        """The contract refused the claim (too little stake, a stranger's signature): forget
        it, so neither the resume loop repeats it nor the refunder waits for it; the provider
        reports again once it has fixed the cause."""
        job.pending_result = None

    def apply_open(self, session: Session, job: Job, opened: Opened) -> bool:
        """The escrow is open: queue the job; a job cancelled meanwhile gets it back."""
        if job.chain_state == C.AWAITING_ORDER:
            return chain_state.advance(session, job, C.OPEN, "escrow opened", opened.receipt)
        if job.chain_state == C.VOID:
            chain_state.advance(
                session, job, C.CANCELLING, "opened after its job was cancelled", opened.receipt
            )
        return False

    def order_landed(self, intent: OrderIntent) -> bool:
        """Whether the contract has the order's job (opened in a batch whose answer was lost)."""
        return self.client.job_state(intent.request.chain_job_id) != CHAIN_NONE

    # ------------------------------------------------------------ results

    def takes_late_claim(self, job: Job) -> bool:
        """A run cancelled midway waits for its provider's claim for the seconds it ran."""
        return job.state == JobState.CANCELLED.value and job.chain_state == C.CLAIM_DUE

    def has_claim(self, job: Job) -> bool:
        """The claim is on-chain already."""
        return job.chain_state in (C.COMMITTED, C.SETTLED)

    def claim_intent(
        self, session: Session, job: Job, report: ResultReport, provider_address: str
    ) -> ClaimIntent:
        """The report must carry the provider's claim, signed by its wallet, over this
        result."""
        assert job.chain_job_id is not None
        claim = self._signed_claim(report, job.chain_job_id, provider_address, "the result")
        job.pending_result = report.model_dump(mode="json")
        job.updated_at = utcnow()  # the intent's age: the resume loop leaves a fresh one alone
        return ClaimIntent(job.chain_job_id, claim)

    def commit(self, intent: ClaimIntent) -> Committed:
        """Commit the claim; the contract's window starts at its block."""
        claim = intent.claim
        outcome = self.client.commit(
            intent.chain_job_id,
            bytes.fromhex(claim.result_hash[2:]),
            claim.amount_micros,
            claim.signature,
        )
        event = outcome.event("ResultCommitted")  # the contract's record, not the request's
        return Committed(
            receipt_of(outcome),
            amount_micros=int(event["amount"]),
            window_end=datetime.fromtimestamp(int(event["windowEnd"]), UTC),
        )

    def apply_commit(self, session: Session, job: Job, committed: Committed) -> ResultReport | None:
        """Record the committed claim; the report it settles (None: recorded already)."""
        awaits = job.state == JobState.RUNNING.value or job.chain_state == C.CLAIM_DUE
        if job.pending_result is None or not awaits:
            return None
        report = ResultReport.model_validate(job.pending_result)
        assert committed.window_end is not None
        chain_state.advance(session, job, C.COMMITTED, "claim committed", committed.receipt)
        job.chain_window_end = int(committed.window_end.timestamp())
        job.pending_result = None
        return report

    # ------------------------------------------------------------ disputes

    def challenge(self, job_ref: str | None, tx_hash: str | None) -> Challenged:
        """The developer challenged the contract itself (it took the bond and checked the
        window); confirm it there and read the transaction's block and gas."""
        if job_ref is None or self.client.job_state(job_ref) != CHAIN_DISPUTED:
            raise Conflict(
                "the contract has no challenge for this job: call challenge() on the market "
                "with your wallet inside the window (`gpumarket job challenge` does it, bond "
                "included)"
            )
        return Challenged(self.mined_at(tx_hash) if tx_hash else StepReceipt(), True)

    def apply_challenge(self, session: Session, job: Job, challenged: Challenged) -> None:
        """The payment is frozen."""
        chain_state.advance(session, job, C.DISPUTED, "challenged", challenged.receipt)

    def resolve_intent(self, job: Job) -> str:
        """Only a disputed claim is ruled on (a cancelled run's too)."""
        if job.chain_state != C.DISPUTED or job.chain_job_id is None:
            raise Conflict(f"job {job.id} is {job.state}; only a DISPUTED job is resolved")
        return job.chain_job_id

    def resolve(self, intent: str, provider_at_fault: bool) -> Ruled:
        """The arbiter's ruling, sent with the coordinator's key (it holds the arbiter role)."""
        outcome = self.client.resolve(intent, provider_at_fault)
        if provider_at_fault:
            amount = int(outcome.event("Refunded")["amount"])
            return Ruled(receipt_of(outcome), payout=None, refund_micros=amount)
        return Ruled(receipt_of(outcome), Payout.from_settled(outcome.event("Settled")), None)

    def apply_ruling(self, session: Session, job: Job, at_fault: bool, ruled: Ruled) -> bool:
        """Record where the ruling sent the money."""
        if job.chain_state != C.DISPUTED:
            return False
        if at_fault:
            chain_state.advance(
                session, job, C.REFUNDED, "ruled against the provider", ruled.receipt
            )
            job.paid_micros = 0
            job.refund_micros = ruled.refund_micros
        else:
            chain_state.advance(
                session, job, C.SETTLED, "ruled for the provider", ruled.receipt, step="resolve"
            )
            assert ruled.payout is not None
            set_payout(job, ruled.payout)
        return True

    # ------------------------------------------------------------ verification

    def check_rerun_claim(
        self, parent: Job, run: Job, report: ResultReport, runner_address: str
    ) -> None:
        """The re-runner's claim, signed by its wallet over its result for the job it
        re-runs: what ``payRerun`` pays it by, and the on-chain evidence of its run."""
        if parent.chain_job_id is None:
            raise Conflict(f"{parent.id} has no on-chain job to verify")
        self._signed_claim(report, parent.chain_job_id, runner_address, "a verification run")

    def _signed_claim(
        self, report: ResultReport, chain_job_id: str, address: str, what: str
    ) -> ResultClaim:
        """The report's claim, checked: over this very result (exit code and outputs), for
        ``chain_job_id``, signed by ``address``."""
        claim = report.claim
        if claim is None:
            raise InvalidRequest(
                f"this market settles on-chain: {what} needs a signed claim (amount, "
                "result_hash, signature); upgrade the provider daemon"
            )
        expected = (
            "0x" + result_hash(report.exit_code, report.output_hash, report.output_digest).hex()
        )
        if claim.result_hash.lower() != expected:
            raise InvalidRequest(
                f"result_hash {claim.result_hash} does not match exit code {report.exit_code} "
                f"and outputs {report.output_digest or report.output_hash}; expected {expected}"
            )
        signer = result_signer(
            bytes.fromhex(claim.signature[2:]),
            bytes.fromhex(chain_job_id[2:]),
            bytes.fromhex(claim.result_hash[2:]),
            claim.amount_micros,
            self.deployment.chain_id,
            self.deployment.market,
        )
        if signer.lower() != address.lower():
            raise InvalidRequest(
                f"the claim is signed by {signer}, not by your registered wallet {address}"
            )
        return claim

    def extend_window(self, job_ref: str | None, seconds: int) -> Extended:
        """``extendWindow`` (the coordinator's verifier role), by at most the terms allow."""
        if job_ref is None:
            raise Conflict("the job has no on-chain window to extend")
        market = self.client.market
        limit = market.terms_at(market.job(bytes.fromhex(job_ref[2:])).terms_index).verify_window
        outcome = self.client.extend_window(job_ref, max(1, min(seconds, limit)))
        end = int(outcome.event("WindowExtended")["windowEnd"])
        return Extended(receipt_of(outcome), datetime.fromtimestamp(end, UTC), end)

    def apply_extend(self, session: Session, job: Job, extended: Extended, seconds: int) -> None:
        """Record the contract's new window end (a step on the job's receipt)."""
        if extended.window_end is not None:
            job.challenge_deadline = extended.window_end
            job.chain_window_end = extended.chain_window_end
        chain_state.record_step(session, job, "extend", extended.receipt)

    def verifier_challenge(self, job_ref: str | None) -> Challenged:
        """The market's own challenge (the verifier role: no bond)."""
        if job_ref is None:
            raise Conflict("the job has no on-chain result to challenge")
        return Challenged(receipt_of(self.client.verifier_challenge(job_ref)), True)

    def pay_rerun(self, intent: RerunIntent) -> StepReceipt:
        """``payRerun``: the re-runner's signed claim, paid from the verification pool."""
        if intent.parent_ref is None or intent.signature is None or intent.result_hash is None:
            raise Conflict(f"{intent.run_id} has no signed claim to pay")
        outcome = self.client.pay_rerun(
            intent.parent_ref,
            intent.run_id,
            bytes.fromhex(intent.result_hash[2:]),
            intent.amount_micros,
            intent.signature,
        )
        return receipt_of(outcome)

    # ------------------------------------------------------------ finalize and refund

    def due_for_finalize(self, session: Session, now: float, limit: int) -> list[tuple[str, str]]:
        """Committed claims whose window has passed on the chain's clock ``now``."""
        rows = session.execute(
            select(Job.id, Job.chain_job_id)
            .where(
                Job.state.in_([JobState.COMMITTED.value, JobState.CANCELLED.value]),
                Job.chain_state == C.COMMITTED.value,
                Job.chain_window_end <= now,
            )
            .order_by(Job.chain_window_end)
            .limit(limit)
        ).all()
        return [(job_id, str(ref)) for job_id, ref in rows]

    def finalize(self, refs: Sequence[str]) -> Finalized:
        """One ``finalizeMany`` (or ``finalize``, cheaper, for one). A job someone else
        finalized or challenged first is left to the event follower."""
        try:
            outcome = (
                self.client.finalize_one(refs[0])
                if len(refs) == 1
                else self.client.finalize_many(list(refs))
            )
        except ContractReverted as exc:
            log.info("finalize of %s refused (%s): its event tells the rest", refs[0], exc.error)
            return Finalized(StepReceipt())
        paid = {
            "0x" + bytes(e["jobId"]).hex(): Payout.from_settled(e)
            for e in outcome.events.get("Settled", [])
        }
        return Finalized(receipt_of(outcome), paid)

    def apply_finalize(self, session: Session, job: Job, ref: str, finalized: Finalized) -> bool:
        """Record the payout of ``job`` when that call paid it."""
        payout = finalized.paid.get(ref)
        if payout is None or job.chain_state != C.COMMITTED:
            return False
        chain_state.advance(session, job, C.SETTLED, "paid out", finalized.receipt)
        set_payout(job, payout)
        return True

    def refund(self, session: Session, job: Job, reason: str) -> None:
        """Mark the open escrow for return (the refunder sends it). A job cancelled while
        running first waits for its provider's claim for the seconds it ran; a job that never
        got its order just forgets it (no money was ever locked)."""
        if job.chain_state == C.OPEN and job.state == JobState.RUNNING.value and job.amount_micros:
            chain_state.advance(session, job, C.CLAIM_DUE, f"{reason}; waiting for the claim")
        elif job.chain_state == C.OPEN:
            chain_state.advance(session, job, C.CANCELLING, reason)
        elif job.chain_state == C.AWAITING_ORDER:
            chain_state.advance(session, job, C.VOID, reason)

    def due_for_refund(self, session: Session, limit: int) -> list[tuple[str, str, int]]:
        """Escrows to return: marked ones, and cancelled runs whose provider sent no claim for
        their seconds within a lease."""
        silent = utcnow() - timedelta(seconds=self.settings.lease_seconds)
        for job in session.scalars(
            select(Job)
            .where(
                Job.chain_state == C.CLAIM_DUE.value,
                Job.finished_at < silent,
                Job.pending_result.is_(None),  # a claim on its way is committed, not refunded
            )
            .limit(limit)
            .with_for_update(skip_locked=True)  # a claim being recorded now holds the row
        ):
            chain_state.advance(session, job, C.CANCELLING, "no claim for the seconds it ran")
        rows = session.execute(
            select(Job.id, Job.chain_job_id, Job.escrow_micros)
            .where(Job.chain_state == C.CANCELLING.value)
            .limit(limit)
        ).all()
        return [(job_id, str(ref), int(escrow)) for job_id, ref, escrow in rows]

    def send_refund(self, ref: str, escrow_micros: int) -> Refunded | None:
        """``cancel`` on the contract; an escrow someone else expired already counts."""
        try:
            outcome = self.client.cancel(ref)
        except ContractReverted as exc:
            if exc.error == "WrongState" and self.client.job_state(ref) == CHAIN_CANCELLED:
                return Refunded(StepReceipt(), escrow_micros)
            log.warning("cannot cancel %s on-chain: %s", ref, exc)
            return None
        return Refunded(receipt_of(outcome), int(outcome.event("Cancelled")["refund"]))

    def apply_refund(self, session: Session, job: Job, refunded: Refunded) -> bool:
        """Record the returned escrow."""
        if job.chain_state not in (C.OPEN, C.CANCELLING, C.CLAIM_DUE):
            return False
        chain_state.advance(session, job, C.CANCELLED, "escrow returned", refunded.receipt)
        job.refund_micros = refunded.amount_micros
        return True

    # ------------------------------------------------------------ reconciliation

    def resume(self) -> None:
        """Confirm whatever a crash or an RPC outage left in the outbox."""
        self.client.resume()

    def stale_intents(
        self, session: Session, older_than: datetime
    ) -> tuple[list[tuple[str, OrderIntent]], list[tuple[str, ClaimIntent]]]:
        """Orders and claims recorded by a request that never finished its step."""
        orders = session.execute(
            select(Job.id, Job.payment_request, Job.order_signature, Job.spec).where(
                Job.chain_state == C.AWAITING_ORDER.value,
                Job.order_signature.is_not(None),
                Job.updated_at < older_than,
            )
        ).all()
        claims = session.execute(
            select(Job.id, Job.chain_job_id, Job.pending_result).where(
                or_(
                    Job.state == JobState.RUNNING.value,
                    Job.chain_state == C.CLAIM_DUE.value,  # a cancelled run's late claim
                ),
                Job.pending_result.is_not(None),
                Job.updated_at < older_than,
            )
        ).all()
        open_orders = [
            (
                job_id,
                _order_intent(PaymentRequest.model_validate(request), str(signature), spec),
            )
            for job_id, request, signature, spec in orders
        ]
        open_claims = []
        for job_id, ref, pending in claims:
            if not pending:  # cleared before this column stored SQL NULL
                continue
            claim = ResultReport.model_validate(pending).claim
            if claim is not None:
                open_claims.append((job_id, ClaimIntent(str(ref), claim)))
        return open_orders, open_claims

    def event_cursor(self, session: Session) -> int:
        """The next block whose events are to be read (kept in the database)."""
        cursor = session.get(ChainCursor, EVENTS_CURSOR)
        return cursor.next_block if cursor else self.deployment.block

    def save_event_cursor(self, session: Session, next_block: int) -> None:
        """Move the cursor, in the transaction that applies what the events changed."""
        cursor = session.get(ChainCursor, EVENTS_CURSOR)
        if cursor is None:
            session.add(ChainCursor(name=EVENTS_CURSOR, next_block=next_block))
        else:
            cursor.next_block = next_block

    def events(self, start: int, max_blocks: int) -> tuple[list[LedgerEvent], set[str], int]:
        """The market's events from block ``start`` (no database transaction is open while
        the chain is read), the providers whose free stake changed, and the next block."""
        found, next_block = self.client.events(start, max_blocks)
        stakes = {str(e.args["provider"]) for e in found if e.name in STAKE_EVENTS}
        # a job's share of the gas: split by the jobs a transaction moved, not by its events (a
        # ruling emits Resolved and Refunded or Settled for its one job)
        moved = {(e.tx_hash, bytes(e.args["jobId"])) for e in found if "jobId" in e.args}
        per_tx = Counter(tx for tx, _ in moved)
        gas = {tx: self.client.mined_at(tx)[1] for tx in per_tx}
        events = [
            LedgerEvent(
                name=e.name,
                job_ref="0x" + bytes(e.args["jobId"]).hex(),
                args=e.args,
                receipt=StepReceipt(
                    e.tx_hash,
                    e.block,
                    None if gas[e.tx_hash] is None else gas[e.tx_hash] // per_tx[e.tx_hash],  # type: ignore[operator]
                ),
            )
            for e in found
            if "jobId" in e.args
        ]
        return events, stakes, next_block

    def free_stake(self, address: str) -> int:
        """A provider's stake not locked by results in their window."""
        return self.client.free_stake(address)

    def chain_time(self) -> int:
        """The latest block's timestamp."""
        return self.client.chain_time()

    def mined_at(self, tx_hash: str) -> StepReceipt:
        """Block and gas of a transaction someone else sent."""
        block, gas = self.client.mined_at(tx_hash)
        return StepReceipt(tx_hash, block, gas)

    # ------------------------------------------------------------ operator

    def health(self) -> SettlementHealth:
        """RPC up, latest block, the coordinator's gas money, transactions awaiting receipts."""
        f = self.client.figures()
        return SettlementHealth(f.up, f.block, f.sender_balance_wei, f.outbox_pending)

    def info(self) -> ChainInfo:
        """The market and its current terms."""
        return self.client.info()

    def market_terms(self) -> MarketTerms:
        """The contract's current terms: a result locks ``stake_to_lock(amount, min_stake,
        stake_multiple)``; a sampled job pays ``premium_bps`` of its amount to the pool."""
        terms = self.client.market.terms()
        return MarketTerms(terms.min_stake, terms.stake_multiple, terms.premium_bps)

    def set_fee(self, fee_bps: int, burn_bps: int | None) -> str:
        """New terms for jobs opened from now on."""
        return self.client.set_fee(fee_bps, burn_bps)

    def set_paused(self, paused: bool) -> str:
        """Stop or resume opening jobs."""
        return self.client.set_paused(paused)

    def is_paused(self) -> bool:
        """Whether the market refuses new jobs."""
        return self.client.is_paused()
