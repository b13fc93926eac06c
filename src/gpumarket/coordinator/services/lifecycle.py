"""The job state machine of DESIGN.md.

Every transition is one function here. Each records the time and a reason in ``job_events``, is
idempotent (asking for the state a job is already in does nothing), and refuses transitions the
lifecycle does not allow with :class:`~gpumarket.errors.InvalidTransition`. Callers hold the
job's row lock (``load_job_for_update``) so two replicas never apply a transition twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import Job, JobEventRow, OfferRow, Provider
from gpumarket.coordinator.services import earnings, matching, reputation
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import InvalidTransition, NotFound
from gpumarket.protocol import JobSpec, JobState
from gpumarket.protocol.pricing import cost_micros, fee_micros

log = logging.getLogger(__name__)

MAX_MATCH_BACKOFF_SECONDS = 10.0
CHANGED_JOBS = "gpumarket.changed_jobs"
"""``session.info`` key: the ids of jobs whose state this transaction changed."""

S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    S.SUBMITTED: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.ASSIGNED, S.CANCELLED, S.EXPIRED}),
    S.ASSIGNED: frozenset({S.RUNNING, S.QUEUED, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMMITTED, S.QUEUED, S.CANCELLED, S.FAILED}),
    S.COMMITTED: frozenset({S.SETTLED, S.DISPUTED}),
    S.DISPUTED: frozenset({S.SETTLED, S.REFUNDED}),
    S.SETTLED: frozenset(),
    S.REFUNDED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}


def load_job_for_update(session: Session, job_id: str) -> Job:
    """Fetch a job holding its row lock (PostgreSQL; SQLite serialises writers already)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def transition(
    session: Session, job: Job, to: JobState, reason: str, now: datetime | None = None
) -> bool:
    """Move ``job`` to ``to``; False when it was already there (the idempotent no-op)."""
    current = JobState(job.state)
    if current is to:
        return False
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"job {job.id} is {current.value}; it cannot become {to.value}")
    at = now or utcnow()
    job.state = to.value
    job.updated_at = at
    session.add(
        JobEventRow(
            job_id=job.id, from_state=current.value, to_state=to.value, reason=reason, at=at
        )
    )
    log.info("job %s: %s -> %s (%s)", job.id, current.value, to.value, reason)
    # once committed, whoever follows the job (a log stream waiting for its end) is woken
    session.info.setdefault(CHANGED_JOBS, set()).add(job.id)
    return True


def record_submission(session: Session, job: Job, now: datetime) -> None:
    """The first history entry of a job (it has no previous state)."""
    session.add(
        JobEventRow(
            job_id=job.id, from_state=None, to_state=S.SUBMITTED.value, reason="submitted", at=now
        )
    )


# ---------------------------------------------------------------- transitions


def queue(session: Session, job: Job, spec: JobSpec, ledger: str) -> None:
    """SUBMITTED -> QUEUED once the escrow is open on ``ledger`` (the backend's name)."""
    if job.state != S.SUBMITTED:
        return
    now = utcnow()
    job.queue_deadline_at = now + timedelta(seconds=spec.queue_timeout_seconds)
    job.next_match_at = now
    transition(session, job, S.QUEUED, f"escrow opened ({ledger})", now)


def assign(
    session: Session,
    job: Job,
    offer: OfferRow,
    provider: Provider,
    gpu_uuids: list[str],
    settings: CoordinatorSettings,
    now: datetime,
) -> None:
    """QUEUED -> ASSIGNED after :func:`matching.reserve` succeeded."""
    job.provider_id = provider.id
    job.gpu_uuids = gpu_uuids
    job.offer_gpu_model = offer.gpu_model
    job.price_micros = offer.price_micros
    job.assigned_at = now
    job.progress = None  # an earlier provider's pull says nothing about this one's
    job.lease_expires_at = now + timedelta(seconds=settings.assignment_ack_seconds)
    job.attempts += 1
    transition(
        session,
        job,
        S.ASSIGNED,
        f"matched to {provider.id} ({offer.gpu_model}) at {offer.price_micros} micros/h",
        now,
    )


def start(session: Session, job: Job, settings: CoordinatorSettings) -> None:
    """ASSIGNED -> RUNNING when the provider acknowledges; a repeat ack is a no-op."""
    if job.state == S.RUNNING:
        return
    now = utcnow()
    job.started_at = now
    job.progress = None
    job.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    transition(session, job, S.RUNNING, "provider started the container", now)


def _bill(job: Job, usage_seconds: float, settings: CoordinatorSettings) -> None:
    assert job.price_micros is not None
    job.usage_seconds = usage_seconds
    job.amount_micros = min(
        cost_micros(job.price_micros, job.gpu_count, usage_seconds), job.escrow_micros
    )
    job.fee_micros = fee_micros(job.amount_micros, settings.fee_bps)


def billed_usage(job: Job, usage_seconds: float, now: datetime) -> float:
    """The seconds a result may bill: what the provider reports, never more than wall-clock
    since the assignment (plus a second of slack) nor the job's own limit."""
    spec = JobSpec.model_validate(job.spec)
    elapsed = (now - (job.assigned_at or now)).total_seconds()
    return max(0.0, min(usage_seconds, elapsed + 1.0, float(spec.max_duration_seconds)))


def billable_micros(job: Job, usage_seconds: float, now: datetime) -> int:
    """The most a result may claim: ask x GPUs x billed seconds, capped by the escrow."""
    assert job.price_micros is not None
    usage = billed_usage(job, usage_seconds, now)
    return min(cost_micros(job.price_micros, job.gpu_count, usage), job.escrow_micros)


def commit(
    session: Session,
    job: Job,
    exit_code: int,
    usage_seconds: float,
    settings: CoordinatorSettings,
    *,
    claimed_micros: int | None = None,
    window_end: datetime | None = None,
) -> None:
    """RUNNING -> COMMITTED: bill the seconds used and start the challenge window.

    With on-chain settlement the provider's signed ``claimed_micros`` (already checked against
    :func:`billable_micros`) is the amount, and ``window_end`` is the contract's window."""
    if job.state == S.COMMITTED:
        return
    if job.state != S.RUNNING:
        raise InvalidTransition(f"job {job.id} is {job.state}; only a RUNNING job takes a result")
    now = utcnow()
    usage = billed_usage(job, usage_seconds, now)
    job.exit_code = exit_code
    job.finished_at = now
    _bill(job, usage, settings)
    if claimed_micros is not None:
        job.amount_micros = claimed_micros
        job.fee_micros = fee_micros(claimed_micros, settings.fee_bps)
    job.committed_at = now
    job.challenge_deadline = window_end or now + timedelta(
        seconds=settings.challenge_window_seconds
    )
    matching.release(session, job)
    reward(session, job.provider_id, completed=1)
    transition(
        session,
        job,
        S.COMMITTED,
        f"result committed: exit code {exit_code}, {usage:.1f}s, {job.amount_micros} micros",
        now,
    )


def finalize(session: Session, job: Job) -> None:
    """COMMITTED -> SETTLED after the challenge window, once the ledger paid the provider."""
    if job.state == S.SETTLED:
        return
    earnings.credit_provider(session, job)
    transition(session, job, S.SETTLED, "challenge window passed without a challenge")


def requeue_or_fail(
    session: Session,
    job: Job,
    reason: str,
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
    *,
    blame_provider: bool,
) -> None:
    """ASSIGNED/RUNNING -> QUEUED (another provider will get it) or, past the attempt limit,
    FAILED with a refund. The provider that lost it is excluded from the next match."""
    if job.state not in (S.ASSIGNED, S.RUNNING):
        return
    now = utcnow()
    if blame_provider:
        reward(session, job.provider_id, timed_out=1)
    if job.provider_id and job.provider_id not in job.excluded_provider_ids:
        job.excluded_provider_ids = [*job.excluded_provider_ids, job.provider_id]
    _unassign(session, job)
    if job.attempts >= settings.max_attempts:
        job.failure_reason = f"{reason}; gave up after {job.attempts} attempts"
        job.finished_at = now
        settlement.refund(session, job, job.failure_reason)
        transition(session, job, S.FAILED, job.failure_reason, now)
        return
    job.next_match_at = now
    job.match_failures = 0
    transition(session, job, S.QUEUED, f"{reason}; back in the queue", now)


def bounce_busy(session: Session, job: Job, reason: str) -> None:
    """ASSIGNED -> QUEUED when the provider had no free slot or GPU to start it. Busy is not
    a fault: the provider is not excluded nor marked down and the attempt is not counted, so
    a busy provider gets the job again once it has room. The next match waits a back-off that
    grows while the bounces go on (the queue deadline still bounds the wait)."""
    if job.state != S.ASSIGNED:
        return
    now = utcnow()
    _unassign(session, job)
    job.attempts = max(0, job.attempts - 1)
    job.match_failures += 1
    job.next_match_at = now + timedelta(seconds=match_backoff_seconds(job.match_failures))
    transition(session, job, S.QUEUED, f"{reason}; back in the queue", now)


def match_backoff_seconds(failures: int) -> float:
    """How long a job waits before its next match after ``failures`` fruitless ones in a row
    (0.5 s doubling, at most MAX_MATCH_BACKOFF_SECONDS)."""
    return min(MAX_MATCH_BACKOFF_SECONDS, 0.5 * float(2 ** min(failures, 8)))


def may_retry_excluded(job: Job, now: datetime, settings: CoordinatorSettings) -> bool:
    """Whether a queued job that no other provider takes may go back to one that failed it:
    after ``excluded_retry_seconds`` in the queue, so it is not stranded until its queue
    deadline (``max_attempts`` bounds how often it fails; then it is refunded). Never for a
    verification run: its excluded providers are the ones it checks."""
    if not job.excluded_provider_ids or job.verifies_job_id is not None:
        return False
    return now >= job.updated_at + timedelta(seconds=settings.excluded_retry_seconds)


def _unassign(session: Session, job: Job) -> None:
    """Free the job's reservation and forget its provider (it is going back to the queue)."""
    matching.release(session, job)
    job.provider_id = None
    job.gpu_uuids = []
    job.offer_gpu_model = None
    job.lease_expires_at = None
    job.started_at = None
    job.progress = None
    job.pending_result = None  # a claim belongs to the assignment it was made for


def fail(session: Session, job: Job, reason: str, settlement: SettlementBackend) -> None:
    """-> FAILED with a full refund: the job cannot run (bad image, refused by policy...)."""
    if job.state == S.FAILED:
        return
    now = utcnow()
    if JobState(job.state).holds_resources:
        matching.release(session, job)
    job.failure_reason = reason
    job.finished_at = now
    settlement.refund(session, job, reason)
    transition(session, job, S.FAILED, reason, now)


def cancel(
    session: Session,
    job: Job,
    reason: str,
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
) -> None:
    """-> CANCELLED. A running job pays for the seconds it used; the rest is refunded and the
    provider is told to stop on its next heartbeat."""
    if job.state == S.CANCELLED:
        return
    state = JobState(job.state)
    if state not in (S.SUBMITTED, S.QUEUED, S.ASSIGNED, S.RUNNING):
        raise InvalidTransition(f"job {job.id} is {state.value} and can no longer be cancelled")
    now = utcnow()
    if state.holds_resources:
        matching.release(session, job)
    if state is S.RUNNING and job.started_at is not None:
        # the seconds used are billed; the ledger pays them (at once off-chain, when the
        # run's claim settles on-chain) and returns the rest
        _bill(job, (now - job.started_at).total_seconds(), settings)
    job.finished_at = now
    settlement.refund(session, job, reason)
    transition(session, job, S.CANCELLED, reason, now)


def expire(
    session: Session,
    job: Job,
    settlement: SettlementBackend,
    reason: str = "no provider matched before the queue deadline",
) -> None:
    """QUEUED -> EXPIRED when no provider matched before the job's queue deadline (or its
    escrow expired on-chain)."""
    if job.state != S.QUEUED:
        return
    job.finished_at = utcnow()
    job.failure_reason = reason
    settlement.refund(session, job, reason)
    transition(session, job, S.EXPIRED, reason)


def expire_run(session: Session, run: Job, reason: str) -> None:
    """A queued verification run called off: nothing was escrowed for it, nothing returns."""
    if run.state != S.QUEUED:
        return
    run.finished_at = utcnow()
    run.failure_reason = reason
    transition(session, run, S.EXPIRED, reason)


def call_off_run(session: Session, run: Job, reason: str) -> None:
    """A verification run whose job ended before it could count: a queued one expires, an
    assigned or running one is cancelled (its provider is told to stop on its next heartbeat,
    and the market pays nothing for it: nothing was escrowed for it)."""
    if run.state == S.QUEUED:
        expire_run(session, run, reason)
        return
    if run.state not in (S.ASSIGNED, S.RUNNING):
        return
    matching.release(session, run)
    run.finished_at = utcnow()
    run.failure_reason = reason
    transition(session, run, S.CANCELLED, reason)


def settle_run(session: Session, run: Job, reason: str) -> None:
    """COMMITTED -> SETTLED: a verification run paid from the verification pool."""
    if run.state == S.SETTLED:
        return
    earnings.credit_provider(session, run)
    transition(session, run, S.SETTLED, reason)


def reject_run(session: Session, run: Job, reason: str) -> None:
    """COMMITTED -> DISPUTED -> REFUNDED: a verification run whose result the majority of
    independent runs contradicts is not paid."""
    if run.state == S.REFUNDED:
        return
    run.paid_micros = 0
    transition(session, run, S.DISPUTED, reason)
    transition(session, run, S.REFUNDED, "not paid: its result is in the minority")


def dispute(session: Session, job: Job, reason: str, *, window_checked: bool = False) -> None:
    """COMMITTED -> DISPUTED, strictly inside the challenge window (the ledger's own check
    when ``window_checked``: the contract's clock is the chain's, not ours)."""
    if job.state == S.DISPUTED:
        return
    if job.state != S.COMMITTED:
        raise InvalidTransition(f"job {job.id} is {job.state}; only a COMMITTED job is challenged")
    now = utcnow()
    if not window_checked and (job.challenge_deadline is None or now >= job.challenge_deadline):
        raise InvalidTransition(f"the challenge window of job {job.id} has closed")
    transition(session, job, S.DISPUTED, f"challenged: {reason}", now)


def resolve(session: Session, job: Job, provider_at_fault: bool, note: str) -> None:
    """DISPUTED -> REFUNDED (provider at fault, reputation hit) or SETTLED (provider right),
    once the ledger applied the ruling's money."""
    if job.state != S.DISPUTED:
        if job.state in (S.SETTLED, S.REFUNDED):
            return
        raise InvalidTransition(f"job {job.id} is {job.state}; only a DISPUTED job is resolved")
    if provider_at_fault:
        slashed = 1 if job.chain_job_id is not None else 0  # on-chain, its stake was slashed
        reward(session, job.provider_id, disputes_lost=1, completed=-1, slashes=slashed)
        transition(session, job, S.REFUNDED, f"dispute resolved against the provider: {note}")
    else:
        earnings.credit_provider(session, job)
        transition(session, job, S.SETTLED, f"dispute resolved for the provider: {note}")


# ---------------------------------------------------------------- reputation


def reward(
    session: Session,
    provider_id: str | None,
    *,
    completed: int = 0,
    failed: int = 0,
    timed_out: int = 0,
    disputes_lost: int = 0,
    reruns_passed: int = 0,
    reruns_failed: int = 0,
    slashes: int = 0,
) -> None:
    """Move the provider's public counters, then its score and ranking (services/reputation)."""
    if provider_id is None:
        return
    provider = session.get(Provider, provider_id)
    if provider is None:
        return
    provider.completed_jobs = max(0, provider.completed_jobs + completed)
    provider.failed_jobs += failed
    provider.timed_out_jobs += timed_out
    provider.disputes_lost += disputes_lost
    provider.reruns_passed += reruns_passed
    provider.reruns_failed += reruns_failed
    provider.slashes += slashes
    reputation.refresh(session, provider, utcnow())


def record_failure(session: Session, provider_id: str | None) -> None:
    """Count a failure the provider reported against its reputation."""
    reward(session, provider_id, failed=1)
