"""Lifecycle steps that move money on-chain.

Each step is three parts: a short transaction that checks the request and records the intent
(the developer's order signature, the provider's signed claim), the chain call through the
outbox with no database transaction open, and a short transaction that applies the
transition. A crash between the parts leaves the intent recorded; :func:`tick` finds it and
runs the step again, and the outbox's per-job keys turn the repeated call into the first one's
outcome. Nothing here holds a database lock while it waits for the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import (
    ChainCursor,
    ChainTx,
    Developer,
    Job,
    JobEventRow,
    Provider,
)
from gpumarket.coordinator.services import jobs, lifecycle, providers
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.chain import (
    CHAIN_CANCELLED,
    CHAIN_DISPUTED,
    CHAIN_NONE,
    ChainSettlement,
    TxOutcome,
)
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Conflict, ContractReverted, GpumarketError, InvalidRequest
from gpumarket.protocol import JobSpec, JobState, PaymentRequest, ResultClaim, ResultReport
from gpumarket.settlement.events import ChainEvent, EventReader
from gpumarket.settlement.signing import Order, order_signer, result_hash, result_signer

log = logging.getLogger(__name__)

STALE_INTENT_SECONDS = 30.0
"""An intent this old with no outcome is a crash's leftover, not a request still in flight."""


def _with_chain_steps(job: Job) -> Job:
    """Load the job's on-chain steps while its session is open (the view lists them)."""
    job.chain_txs  # noqa: B018 - the lazy load is the point
    return job


def _record(
    session: Session,
    job: Job,
    step: str,
    outcome: TxOutcome | None,
    tx: str,
    mined: tuple[int | None, int | None] = (None, None),
) -> None:
    """One chain step on the job's receipt: from our own transaction's ``outcome``, or from
    ``mined`` (block, gas) for a transaction someone else sent."""
    block, gas = (outcome.sent.block, outcome.gas_share) if outcome else mined
    session.add(
        ChainTx(job_id=job.id, step=step, tx_hash=tx, block=block, gas_used=gas, at=utcnow())
    )


# ------------------------------------------------------------------ open


def open_job(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    principal: Principal,
    job_id: str,
    signature: str,
) -> Job:
    """Relay the developer's signed order and queue the job once its escrow is open."""
    with session_scope(factory) as session:
        job = jobs.get_visible(session, principal, job_id)
        job = lifecycle.load_job_for_update(session, job_id)
        if job.chain_state == "open":
            return _with_chain_steps(job)
        if job.state != JobState.SUBMITTED.value or job.chain_state != "awaiting_order":
            raise Conflict(f"job {job_id} is {job.state}; it takes no order now")
        assert job.payment_request is not None
        request = PaymentRequest.model_validate(job.payment_request)
        owner = session.get(Developer, job.owner_id)
        assert owner is not None
        signer = order_signer(
            bytes.fromhex(signature[2:]),
            Order.from_request(request),
            request.chain_id,
            request.market,
        )
        if signer.lower() != owner.address.lower():
            raise InvalidRequest(
                f"the order is signed by {signer}, but the job belongs to {owner.address}: "
                "sign the payment request with the wallet you logged in with"
            )
        job.order_signature = signature
    try:
        outcome = backend.open(request, signature)
    except GpumarketError:
        with session_scope(factory) as session:
            lifecycle.load_job_for_update(session, job_id).order_signature = None
        raise
    return _opened(factory, backend, job_id, outcome)


def _opened(
    factory: sessionmaker[Session], backend: ChainSettlement, job_id: str, outcome: TxOutcome
) -> Job:
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.chain_state == "awaiting_order":
            _record(session, job, "open", outcome, outcome.sent.hash)
            _apply_open(session, backend, job)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def _apply_open(session: Session, backend: ChainSettlement, job: Job) -> None:
    """The escrow is open: the job is QUEUED."""
    job.chain_state = "open"
    lifecycle.queue(session, job, JobSpec.model_validate(job.spec), backend)


# ------------------------------------------------------------------ commit


def commit_result(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    principal: Principal,
    job_id: str,
    report: ResultReport,
    settings: CoordinatorSettings,
) -> Job:
    """Check the provider's signed claim, commit it on-chain, then mark the job COMMITTED."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.provider_id != principal.account_id:
            raise InvalidRequest(f"job {job_id} is not assigned to you")
        if job.state == JobState.COMMITTED.value or job.chain_state in ("committed", "settled"):
            return _with_chain_steps(job)
        cancelled_run = job.state == JobState.CANCELLED.value and job.chain_state == "claim_due"
        if job.state == JobState.ASSIGNED.value:
            lifecycle.start(session, job, settings)
        if job.state != JobState.RUNNING.value and not cancelled_run:
            raise Conflict(f"job {job_id} is {job.state}; it takes no result now")
        providers.check_outputs(job, report)
        claim = report.claim
        if claim is None:
            raise InvalidRequest(
                "this market settles on-chain: the result needs a signed claim (amount, "
                "result_hash, signature); upgrade the provider daemon"
            )
        expected = "0x" + result_hash(report.exit_code, report.output_hash).hex()
        if claim.result_hash.lower() != expected:
            raise InvalidRequest(
                f"result_hash {claim.result_hash} does not match exit code {report.exit_code} "
                f"and outputs {report.output_hash}; expected {expected}"
            )
        until = job.finished_at if cancelled_run and job.finished_at else utcnow()
        bound = lifecycle.billable_micros(job, report.usage_seconds, until)
        if claim.amount_micros > bound:  # signed by the provider: refused, never cut down
            billed = lifecycle.billed_usage(job, report.usage_seconds, until)
            raise InvalidRequest(
                f"the claim of {claim.amount_micros} micros is over the {bound} micros that "
                f"{billed:.1f}s at the agreed price allow (the {report.usage_seconds:.1f}s "
                "reported, billed up to the job's max_duration_seconds and never beyond the "
                "time since its assignment); sign a claim for at most that"
            )
        provider = session.get(Provider, job.provider_id)
        assert provider is not None and job.chain_job_id is not None
        signer = result_signer(
            bytes.fromhex(claim.signature[2:]),
            bytes.fromhex(job.chain_job_id[2:]),
            bytes.fromhex(claim.result_hash[2:]),
            claim.amount_micros,
            backend.deployment.chain_id,
            backend.deployment.market,
        )
        if signer.lower() != provider.address.lower():
            raise InvalidRequest(
                f"the claim is signed by {signer}, not by your registered wallet {provider.address}"
            )
        job.pending_result = report.model_dump(mode="json")
        chain_job_id = job.chain_job_id
    return _committed(factory, backend, job_id, _send_claim(backend, chain_job_id, claim), settings)


def _send_claim(backend: ChainSettlement, chain_job_id: str, claim: ResultClaim) -> TxOutcome:
    return backend.commit(
        chain_job_id, bytes.fromhex(claim.result_hash[2:]), claim.amount_micros, claim.signature
    )


def _committed(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    job_id: str,
    outcome: TxOutcome,
    settings: CoordinatorSettings,
) -> Job:
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if _awaits_commit(job):
            _record(session, job, "commit", outcome, outcome.sent.hash)
            window_end = int(outcome.events["ResultCommitted"][0]["windowEnd"])
            _apply_commit(session, backend, job, window_end, settings)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def _awaits_commit(job: Job) -> bool:
    """Whether the job holds a checked claim whose commit it has not recorded yet."""
    running = job.state == JobState.RUNNING.value
    return job.pending_result is not None and (running or job.chain_state == "claim_due")


def _apply_commit(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    window_end: int,
    settings: CoordinatorSettings,
) -> None:
    """The claim is on-chain: COMMITTED until ``window_end`` (chain time)."""
    report = ResultReport.model_validate(job.pending_result)
    assert report.claim is not None
    job.chain_window_end = window_end
    job.chain_state = "committed"
    job.pending_result = None
    if job.state == JobState.RUNNING.value:
        lifecycle.commit(
            session,
            job,
            report.exit_code,
            report.usage_seconds,
            backend,
            settings,
            claimed_micros=report.claim.amount_micros,
            window_end=datetime.fromtimestamp(window_end, UTC),
        )
    else:  # a run cancelled midway: the claim pays its seconds; it stays CANCELLED
        job.amount_micros = report.claim.amount_micros


# ------------------------------------------------------------------ challenge and resolve


def challenge(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    principal: Principal,
    job_id: str,
    reason: str,
    tx_hash: str | None,
) -> Job:
    """Record a challenge the developer already made on-chain (the contract takes its bond
    and enforces the window). The event follower may have seen the challenge first and
    recorded it with a placeholder reason: the developer's own reason then replaces it, so it
    is never lost whichever comes first."""
    with session_scope(factory) as session:
        job = jobs.get_visible(session, principal, job_id)
        if job.state == JobState.DISPUTED.value:
            job = lifecycle.load_job_for_update(session, job_id)
            _keep_challengers_reason(session, job, reason)
            return _with_chain_steps(job)
        if job.state != JobState.COMMITTED.value or job.chain_job_id is None:
            raise Conflict(f"job {job_id} is {job.state}; only a COMMITTED job is challenged")
        chain_job_id = job.chain_job_id
    if backend.job_state(chain_job_id) != CHAIN_DISPUTED:
        raise Conflict(
            "the contract has no challenge for this job: call challenge() on the market with "
            "your wallet inside the window (`gpumarket job challenge` does it, bond included)"
        )
    # the developer's transaction is mined (the contract shows the dispute): its block and
    # gas go on the job's receipt, read before the row is locked
    block, gas = backend.mined_at(tx_hash) if tx_hash else (None, None)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.state == JobState.COMMITTED.value:
            job.chain_state = "disputed"
            if tx_hash:
                _record(session, job, "challenge", None, tx_hash, mined=(block, gas))
            lifecycle.dispute(session, job, reason, backend, accepted_on_chain=True)
        else:  # the follower recorded the challenge while we asked the contract
            _keep_challengers_reason(session, job, reason)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


CHALLENGED_ON_CHAIN_BY = "challenged on-chain by "
"""The start of the reason the event follower records for a challenge it sees before the
developer's request with the developer's own reason."""


def _keep_challengers_reason(session: Session, job: Job, reason: str) -> None:
    """Put the developer's ``reason`` in place of the follower's placeholder in the job's move
    to DISPUTED; a reason the developer already gave is kept."""
    event = session.scalar(
        select(JobEventRow)
        .where(JobEventRow.job_id == job.id, JobEventRow.to_state == JobState.DISPUTED.value)
        .order_by(JobEventRow.id.desc())
        .limit(1)
    )
    if event is None:
        return
    head, placeholder, _challenger = event.reason.partition(CHALLENGED_ON_CHAIN_BY)
    if placeholder:
        event.reason = head + reason


def resolve(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    job_id: str,
    provider_at_fault: bool,
    note: str,
) -> Job:
    """The arbiter's ruling, on-chain first, then in the job's record."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.state in (JobState.SETTLED.value, JobState.REFUNDED.value):
            return _with_chain_steps(job)
        if job.chain_state != "disputed" or job.chain_job_id is None:
            raise Conflict(f"job {job_id} is {job.state}; only a DISPUTED job is resolved")
        chain_job_id = job.chain_job_id
    outcome = backend.resolve(chain_job_id, provider_at_fault)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        if job.chain_state == "disputed":
            _record(session, job, "resolve", outcome, outcome.sent.hash)
            money = outcome.events["Refunded" if provider_at_fault else "Settled"][0]
            _apply_ruling(session, backend, job, provider_at_fault, money, note)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def _apply_settled(job: Job, args: dict[str, Any]) -> None:
    job.paid_micros = int(args["providerPaid"])
    job.fee_micros = int(args["fee"])
    job.burned_micros = int(args["burned"])
    job.refund_micros = int(args["refund"])


def _apply_payout(
    session: Session, backend: ChainSettlement, job: Job, args: dict[str, Any]
) -> None:
    """A committed claim was paid (``Settled``): SETTLED, or a cancelled run's seconds paid."""
    _apply_settled(job, args)
    job.chain_state = "settled"
    if job.state == JobState.COMMITTED.value:
        lifecycle.finalize(session, job, backend)
    else:
        lifecycle.credit_provider(session, job)


def _apply_ruling(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    provider_at_fault: bool,
    money: dict[str, Any],
    note: str,
) -> None:
    """The arbiter's ruling, from its ``Refunded`` (at fault) or ``Settled`` event. A cancelled
    run whose claim was disputed stays CANCELLED; an upheld claim still pays its seconds."""
    if provider_at_fault:
        job.chain_state = "refunded"
        job.paid_micros = 0
        job.refund_micros = int(money["amount"])
    else:
        job.chain_state = "settled"
        _apply_settled(job, money)
    if job.state == JobState.DISPUTED.value:
        lifecycle.resolve(session, job, provider_at_fault, note, backend)
    elif not provider_at_fault:
        lifecycle.credit_provider(session, job)


# ------------------------------------------------------------------ background


def finalize_ready(
    factory: sessionmaker[Session], backend: ChainSettlement, settings: CoordinatorSettings
) -> int:
    """Pay out committed jobs whose window has passed on the chain's clock, in one
    ``finalizeMany`` (or ``finalize``, cheaper, when only one is ready). A job it skips, or
    that the contract refuses (someone else finalized or challenged it first), is reconciled
    by :func:`follow_events`."""
    chain_now = backend.chain_time()
    with session_scope(factory) as session:
        rows = session.execute(
            select(Job.id, Job.chain_job_id)
            .where(
                Job.state.in_([JobState.COMMITTED.value, JobState.CANCELLED.value]),
                Job.chain_state == "committed",
                Job.chain_window_end <= chain_now,
            )
            .order_by(Job.chain_window_end)
            .limit(settings.finalize_batch_size)
        ).all()
    ready = [(job_id, str(chain_id)) for job_id, chain_id in rows]
    if not ready:
        return 0
    try:
        outcome = (
            backend.finalize_one(ready[0][1])
            if len(ready) == 1
            else backend.finalize_many([chain_id for _, chain_id in ready])
        )
    except ContractReverted as exc:  # one job, finalized or challenged by someone else first
        log.info("finalize of %s refused (%s): its event tells the rest", ready[0][0], exc.error)
        return 0
    settled = {"0x" + bytes(e["jobId"]).hex(): e for e in outcome.events.get("Settled", [])}
    done = 0
    with session_scope(factory) as session:
        for job_id, chain_id in ready:
            job = lifecycle.load_job_for_update(session, job_id)
            if chain_id in settled and job.chain_state == "committed":
                _record(session, job, "finalize", outcome, outcome.sent.hash)
                _apply_payout(session, backend, job, settled[chain_id])
                done += 1
    return done


def send_refunds(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    settings: CoordinatorSettings,
    limit: int = 50,
) -> int:
    """Cancel on-chain the open escrows of jobs that ended without a result, and of cancelled
    runs whose provider sent no claim for their seconds within a lease."""
    silent = utcnow() - timedelta(seconds=settings.lease_seconds)
    with session_scope(factory) as session:
        session.execute(
            update(Job)
            .where(Job.chain_state == "claim_due", Job.finished_at < silent)
            .values(chain_state="cancelling")
            .execution_options(synchronize_session=False)
        )
    with session_scope(factory) as session:
        pending = session.execute(
            select(Job.id, Job.chain_job_id, Job.escrow_micros)
            .where(Job.chain_state == "cancelling")
            .limit(limit)
        ).all()
    done = 0
    for job_id, chain_job_id, escrow in pending:
        chain_id = str(chain_job_id)
        outcome: TxOutcome | None
        try:
            outcome = backend.cancel(chain_id)
            refund = int(outcome.events["Cancelled"][0]["refund"])
            tx_hash = outcome.sent.hash
        except ContractReverted as exc:
            if exc.error != "WrongState" or backend.job_state(chain_id) != CHAIN_CANCELLED:
                log.warning("cannot cancel job %s on-chain: %s", job_id, exc)
                continue
            outcome, refund, tx_hash = None, escrow, ""  # someone expired it already
        with session_scope(factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            if job.chain_state == "cancelling":
                job.chain_state = "cancelled"
                job.refund_micros = refund
                if tx_hash:
                    _record(session, job, "cancel", outcome, tx_hash)
                done += 1
    return done


def resume_intents(
    factory: sessionmaker[Session], backend: ChainSettlement, settings: CoordinatorSettings
) -> int:
    """Finish the open and commit steps a crash interrupted after recording their intent."""
    backend.resume()
    stale = utcnow() - timedelta(seconds=STALE_INTENT_SECONDS)
    with session_scope(factory) as session:
        orders = session.execute(
            select(Job.id, Job.payment_request, Job.order_signature).where(
                Job.chain_state == "awaiting_order",
                Job.order_signature.is_not(None),
                Job.updated_at < stale,
            )
        ).all()
        results = session.execute(
            select(Job.id, Job.chain_job_id, Job.pending_result).where(
                Job.state == JobState.RUNNING.value,
                Job.pending_result.is_not(None),
                Job.updated_at < stale,
            )
        ).all()
    for job_id, request, signature in orders:
        payment = PaymentRequest.model_validate(request)
        try:
            outcome = backend.open(payment, signature)
        except GpumarketError as exc:
            if backend.job_state(payment.chain_job_id) != CHAIN_NONE:
                continue  # opened in a batch whose answer was lost: its event will say so
            log.warning("the order of job %s can no longer be opened: %s", job_id, exc)
            with session_scope(factory) as session:
                lifecycle.load_job_for_update(session, job_id).order_signature = None
            continue
        _opened(factory, backend, job_id, outcome)
    for job_id, chain_id, pending in results:
        report = ResultReport.model_validate(pending)
        assert report.claim is not None
        try:
            outcome = _send_claim(backend, chain_id, report.claim)
        except GpumarketError as exc:
            log.warning("the result of job %s cannot be committed: %s", job_id, exc)
            continue
        _committed(factory, backend, job_id, outcome, settings)
    return len(orders) + len(results)


EVENTS_CURSOR = "market-events"


def follow_events(
    factory: sessionmaker[Session],
    backend: ChainSettlement,
    settings: CoordinatorSettings,
    max_blocks: int = 2000,
) -> int:
    """Reconcile jobs with what others did on the contract: a developer's challenge sent
    straight to it, a job someone else finalized, an escrow expired after its order's deadline,
    and a claim committed in a batch whose answer a crash lost. The next block to read is kept
    in the database, so a restart resumes where it stopped."""
    with session_scope(factory) as session:
        cursor = session.get(ChainCursor, EVENTS_CURSOR)
        start = cursor.next_block if cursor else backend.deployment.block
    reader = EventReader(backend.market, start)
    seen = list(reader.poll(max_blocks))
    events = [e for e in seen if e.name in _EVENT_HANDLERS]
    stakes_moved = {str(e.args["provider"]) for e in seen if e.name in _STAKE_EVENTS}
    applied = 0
    with session_scope(factory) as session:
        for event in events:
            job = session.scalar(
                select(Job)
                .where(Job.chain_job_id == "0x" + bytes(event.args["jobId"]).hex())
                .with_for_update()
            )
            if job is None:
                continue
            if event.name in ("Settled", "Resolved") and job.provider_id is not None:
                provider = session.get(Provider, job.provider_id)
                if provider is not None:
                    stakes_moved.add(provider.address)  # its lock is released or slashed
            try:
                with session.begin_nested():
                    applied += _EVENT_HANDLERS[event.name](session, backend, job, event, settings)
            except GpumarketError as exc:  # one odd job never stalls the others
                log.warning("event %s of job %s left as is: %s", event.name, job.id, exc)
        cursor = session.get(ChainCursor, EVENTS_CURSOR)
        if cursor is None:
            cursor = ChainCursor(name=EVENTS_CURSOR, next_block=start)
            session.add(cursor)
        cursor.next_block = reader.cursor
    refresh_stakes(factory, backend, stakes_moved)
    return applied


_STAKE_EVENTS = ("Staked", "UnstakeRequested", "ResultCommitted")
NEW_PROVIDER_SECONDS = 600.0
"""A provider registered this recently without a known stake is looked up on-chain (its
stake may predate its registration, so no event will tell us)."""


def refresh_stakes(
    factory: sessionmaker[Session], backend: ChainSettlement, addresses: set[str]
) -> None:
    """Copy providers' free stake from the contract into ``providers.stake_micros``, which
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
    stakes = {address: backend.free_stake(address) for address in wanted}
    with session_scope(factory) as session:
        for address, stake in stakes.items():
            session.execute(
                update(Provider)
                .where(Provider.address == address)
                .values(stake_micros=stake)
                .execution_options(synchronize_session=False)
            )


def _record_event(session: Session, job: Job, step: str, event: ChainEvent) -> None:
    if not any(tx.tx_hash == event.tx_hash for tx in job.chain_txs):
        session.add(
            ChainTx(job_id=job.id, step=step, tx_hash=event.tx_hash, block=event.block, at=utcnow())
        )


def _on_opened(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    """An order opened in a batch whose answer a crash (or an RPC outage) lost."""
    if job.chain_state == "awaiting_order":
        _record_event(session, job, "open", event)
        _apply_open(session, backend, job)
        return True
    if job.chain_state == "void":  # the job was cancelled meanwhile: the escrow goes back
        _record_event(session, job, "open", event)
        job.chain_state = "cancelling"
        return True
    return False


def _on_committed(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if not _awaits_commit(job):
        return False  # recorded when its transaction was answered (the usual case)
    _record_event(session, job, "commit", event)
    _apply_commit(session, backend, job, int(event.args["windowEnd"]), settings)
    return True


def _on_challenged(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if job.chain_state != "committed":
        return False
    job.chain_state = "disputed"
    _record_event(session, job, "challenge", event)
    if job.state != JobState.COMMITTED.value:
        return True  # a cancelled run's claim: the job stays CANCELLED, the arbiter rules
    # a placeholder until the developer's request brings their reason (`challenge`)
    reason = f"{CHALLENGED_ON_CHAIN_BY}{event.args['challenger']}"
    lifecycle.dispute(session, job, reason, backend, accepted_on_chain=True)
    return True


def _on_settled(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if job.chain_state == "disputed":  # the arbiter ruled for the provider, not through us
        _apply_ruling(session, backend, job, False, event.args, RULED_ON_CHAIN)
        return True
    if job.chain_state != "committed":
        return False
    _record_event(session, job, "finalize", event)
    _apply_payout(session, backend, job, event.args)
    return True


def _on_cancelled(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if job.chain_state not in ("open", "cancelling", "claim_due"):
        return False
    job.chain_state = "cancelled"
    job.refund_micros = int(event.args["refund"])
    _record_event(session, job, "cancel", event)
    reason = "the order's deadline passed and its escrow was returned on-chain"
    if job.state == JobState.QUEUED.value:
        lifecycle.expire(session, job, backend, reason)
    elif not JobState(job.state).is_terminal:
        lifecycle.fail(session, job, reason, backend)
    return True


def _on_resolved(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if job.chain_state != "disputed":
        return False
    _record_event(session, job, "resolve", event)  # the money follows in Refunded or Settled
    return True


def _on_refunded(
    session: Session,
    backend: ChainSettlement,
    job: Job,
    event: ChainEvent,
    settings: CoordinatorSettings,
) -> bool:
    if job.chain_state != "disputed":
        return False
    _apply_ruling(session, backend, job, True, event.args, RULED_ON_CHAIN)
    return True


RULED_ON_CHAIN = "resolved on-chain by the arbiter"

EventHandler = Callable[[Session, ChainSettlement, Job, ChainEvent, CoordinatorSettings], bool]
"""Applies one market event to its job; True when it changed something."""

_EVENT_HANDLERS: dict[str, EventHandler] = {
    "JobOpened": _on_opened,
    "ResultCommitted": _on_committed,
    "Challenged": _on_challenged,
    "Settled": _on_settled,
    "Cancelled": _on_cancelled,
    "Resolved": _on_resolved,
    "Refunded": _on_refunded,
}


def tick(
    factory: sessionmaker[Session], backend: ChainSettlement, settings: CoordinatorSettings
) -> None:
    """One round of the chain pipeline."""
    follow_events(factory, backend, settings)
    resume_intents(factory, backend, settings)
    send_refunds(factory, backend, settings)
    finalize_ready(factory, backend, settings)
