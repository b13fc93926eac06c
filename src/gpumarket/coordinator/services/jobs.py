"""Developer-facing job operations: submit, list, show, history, cancel, challenge.

Visibility is enforced here, not in routers: a developer sees only jobs it owns, a provider only
jobs currently assigned to it, the operator everything. A job the caller may not see is reported
as not found, so ids cannot be probed.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from gpumarket.coordinator.db.base import new_id, utcnow
from gpumarket.coordinator.db.models import Job, JobEventRow
from gpumarket.coordinator.services import lifecycle, matching, verification
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from gpumarket.protocol import (
    ChainState,
    JobEvent,
    JobSpec,
    JobState,
    JobView,
    Role,
    VerificationState,
    from_micros,
)
from gpumarket.protocol.jobs import spec_hash
from gpumarket.protocol.pricing import max_payment_micros


def _idempotent_match(
    session: Session, owner: Principal, idempotency_key: str, digest: str
) -> Job | None:
    """The job an earlier request with this key created, if any (a different spec under the
    same key is refused)."""
    existing = session.scalar(
        select(Job).where(Job.owner_id == owner.account_id, Job.idempotency_key == idempotency_key)
    )
    if existing is not None and existing.spec_hash != digest:
        raise InvalidRequest(
            "this Idempotency-Key was already used for a different spec; use a new key"
        )
    return existing


def submit(
    session: Session,
    owner: Principal,
    spec: JobSpec,
    idempotency_key: str | None,
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
) -> Job:
    """Create a job and queue it once its escrow is open; a retried request with the same
    ``Idempotency-Key`` returns the job the first one created."""
    spec_json = spec.model_dump(mode="json")
    digest = spec_hash(spec_json)
    if idempotency_key is not None:
        existing = _idempotent_match(session, owner, idempotency_key, digest)
        if existing is not None:
            return existing
    now = utcnow()
    job = Job(
        id=new_id("job"),
        owner_id=owner.account_id,
        idempotency_key=idempotency_key,
        state=JobState.SUBMITTED.value,
        spec=spec_json,
        spec_hash=digest,
        gpu_count=spec.resources.gpu_count,
        max_price_micros=matching.Requirements.from_spec(spec).max_price_micros,
        escrow_micros=max_payment_micros(spec, settings.verification_premium_bps),
        created_at=now,
        updated_at=now,
        gpu_uuids=[],
        excluded_provider_ids=[],
        attempts=0,
        match_failures=0,
        log_bytes=0,
        log_truncated=False,
        outputs_stored=False,
    )
    if idempotency_key is None:
        session.add(job)
    else:
        try:
            # a savepoint: a concurrent request with the same key that committed first makes
            # this insert fail on the unique key, and that request's job is the answer
            with session.begin_nested():
                session.add(job)
                session.flush()
        except IntegrityError:
            existing = _idempotent_match(session, owner, idempotency_key, digest)
            if existing is None:
                raise
            return existing
    lifecycle.record_submission(session, job, now)
    if settlement.fund_on_submit(session, job, spec):
        lifecycle.queue(session, job, spec, settlement.name)
        verification.start_replicas(session, job)
    return job


def with_chain_steps(job: Job) -> Job:
    """Load the job's ledger steps while its session is open (the view lists them)."""
    job.chain_txs  # noqa: B018 - the lazy load is the point
    return job


def get_visible(session: Session, principal: Principal, job_id: str) -> Job:
    """The job if ``principal`` may see it, else NotFound."""
    job = session.get(Job, job_id)
    if job is None or not can_see(principal, job):
        raise NotFound(f"no job {job_id!r} visible to you")
    return job


def check_outputs_readable(session: Session, principal: Principal, job: Job) -> None:
    """A developer reads the outputs of the market's run of its job (a replica that holds the
    majority's result, say) only once its job reported a result of its own: the runs of a job
    it cancelled, or that never ran, are the market's work, not free compute."""
    if principal.role is not Role.DEVELOPER or job.verifies_job_id is None:
        return
    parent = session.get(Job, job.verifies_job_id)
    if parent is None or parent.exit_code is None:
        raise PermissionDenied(
            f"{job.id} is the market's verification run of {job.verifies_job_id}, which has "
            "no result of its own: its runs' outputs are readable once it has one"
        )


def can_see(principal: Principal, job: Job) -> bool:
    """Developers see their own jobs, providers the ones assigned to them, admins all."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.DEVELOPER:
        return job.owner_id == principal.account_id
    return job.provider_id == principal.account_id


def _encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


_CURSOR_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor points after; anything but a cursor this coordinator made
    is refused, so a crafted one never reaches the query."""
    malformed = InvalidRequest("cursor is malformed; pass back next_cursor unchanged")
    try:
        created, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        at = datetime.fromisoformat(created)
    except (ValueError, UnicodeError) as exc:
        raise malformed from exc
    if at.tzinfo is None or not _CURSOR_JOB_ID.match(job_id):
        raise malformed
    return at, job_id


def list_jobs(
    session: Session,
    principal: Principal,
    states: list[JobState],
    limit: int,
    cursor: str | None,
    owner_id: str | None = None,
    provider_id: str | None = None,
) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated (stable under inserts)."""
    query = select(Job).options(selectinload(Job.chain_txs))  # one query for the page's steps
    if principal.role is Role.DEVELOPER:
        # the market's verification runs of a developer's jobs are listed with each job
        query = query.where(Job.owner_id == principal.account_id, Job.verifies_job_id.is_(None))
    elif principal.role is Role.PROVIDER:
        query = query.where(Job.provider_id == principal.account_id)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    if provider_id is not None:
        query = query.where(Job.provider_id == provider_id)
    if states:
        query = query.where(Job.state.in_([s.value for s in states]))
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def awaiting_ruling(session: Session, limit: int) -> list[Job]:
    """Jobs the arbiter must rule on, oldest first: DISPUTED ones, and cancelled runs whose
    claim was challenged on-chain (those stay CANCELLED)."""
    query = (
        select(Job)
        .where(
            or_(Job.state == JobState.DISPUTED.value, Job.chain_state == ChainState.DISPUTED.value)
        )
        .order_by(Job.updated_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def history(session: Session, job: Job) -> list[JobEvent]:
    """Every transition of ``job``, oldest first."""
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job.id).order_by(JobEventRow.id)
    )
    return [_event(r) for r in rows]


def _event(row: JobEventRow) -> JobEvent:
    """One history entry on the wire: a lifecycle move, a money step with its tx, or a step of
    its verification by re-execution."""
    machines: dict[str, type[JobState] | type[ChainState] | type[VerificationState]] = {
        "chain": ChainState,
        "verify": VerificationState,
    }
    state = machines.get(row.kind, JobState)
    return JobEvent(
        kind=row.kind if row.kind in machines else "job",
        from_state=state(row.from_state) if row.from_state else None,
        to_state=state(row.to_state),
        reason=row.reason,
        at=row.at,
        tx_hash=row.tx_hash,
        block=row.block,
        gas_used=row.gas_used,
    )


def to_view(job: Job, explanation: object | None = None, spec: JobSpec | None = None) -> JobView:
    """The wire view of a job (``explanation`` is a MatchExplanation for queued jobs; pass the
    already-validated ``spec`` when there is one, to skip validating it again)."""
    return JobView.model_validate(
        {
            "id": job.id,
            "state": job.state,
            "spec": spec if spec is not None else job.spec,
            "owner": job.owner_id,
            "provider_id": job.provider_id,
            "gpu_uuids": job.gpu_uuids or [],
            "price_per_hour": from_micros(job.price_micros)
            if job.price_micros is not None
            else None,
            "attempts": job.attempts,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "exit_code": job.exit_code,
            "usage_seconds": job.usage_seconds,
            "output_hash": job.output_hash,
            "output_size": job.output_size,
            "output_digest": job.output_digest,
            "outputs_available": job.outputs_stored,
            **_charges(job),
            "challenge_deadline": job.challenge_deadline,
            "failure_reason": job.failure_reason,
            "why_no_match": explanation,
            "progress": job.progress if job.state == JobState.ASSIGNED.value else None,
            "verification": job.verification if job.verifies_job_id is None else None,
            "sampling_rate": job.sampling_rate,
            # a job whose provider was ruled at fault is refunded whole, premium included
            "verification_premium": from_micros(job.premium_micros)
            if job.premium_micros and job.state != JobState.REFUNDED.value
            else None,
            "verifies_job_id": job.verifies_job_id,
            "verification_runs": job.verification_runs or [],
            **(_chain_fields(job) if job.chain_state is not None else {}),
        }
    )


def _charges(job: Job) -> dict[str, Decimal | None]:
    """What the developer pays for the job and the fee in it: nothing for a REFUNDED job (a
    dispute ruled against the provider returns the whole escrow), the claim otherwise."""
    if job.state == JobState.REFUNDED.value:
        return {"cost": Decimal(0), "fee": Decimal(0)}
    return {
        "cost": from_micros(job.amount_micros) if job.amount_micros is not None else None,
        "fee": from_micros(job.fee_micros) if job.fee_micros is not None else None,
    }


def _chain_fields(job: Job) -> dict[str, Any]:
    def amount(micros: int | None) -> Decimal | None:
        return from_micros(micros) if micros is not None else None

    settled = job.paid_micros is not None or job.refund_micros is not None
    return {
        "chain_job_id": job.chain_job_id,
        "payment": job.payment_request
        if job.chain_state == ChainState.AWAITING_ORDER.value
        else None,
        "chain": [
            {
                "step": tx.step,
                "tx_hash": tx.tx_hash,
                "block": tx.block,
                "gas_used": tx.gas_used,
                "at": tx.at,
            }
            for tx in job.chain_txs
        ],
        "receipt": {
            "paid": amount(job.paid_micros),
            "fee": amount(job.fee_micros) if job.paid_micros is not None else None,
            "burned": amount(job.burned_micros),
            "refund": amount(job.refund_micros),
        }
        if settled
        else None,
    }


def view_with_explanation(
    session: Session, job: Job, settings: CoordinatorSettings, *, explain: bool = True
) -> JobView:
    """A job's view; a QUEUED job also says why no provider has taken it yet."""
    explanation = None
    if explain and job.state == JobState.QUEUED.value:
        explanation = matching.explain(
            session,
            JobSpec.model_validate(job.spec),
            utcnow(),
            settings,
            job.excluded_provider_ids,
        )
    return to_view(job, explanation)


def cancel(
    session: Session,
    principal: Principal,
    job_id: str,
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
) -> Job:
    """Cancel a job the caller owns (or any job, for the operator)."""
    get_visible(session, principal, job_id)
    job = lifecycle.load_job_for_update(session, job_id)
    if job.verifies_job_id is not None and principal.role is not Role.ADMIN:
        raise Conflict(
            f"{job_id} is the market's verification run of {job.verifies_job_id}, paid from "
            "the verification pool; only the operator can cancel it"
        )
    who = "the operator" if principal.role is Role.ADMIN else "the developer"
    lifecycle.cancel(session, job, f"cancelled by {who}", settlement, settings)
    return job
