"""Verification by re-execution: the draw after a sampled job's commit, the market's re-runs,
their comparison by canonical output digest, and the verdict of the majority of independent
runs (docs/protocol.md, "Verification").

A sampled job (``verification: sampled``, deterministic) is drawn for a re-run with the
probability p its provider's public score gives (services/reputation.py). A drawn job gets a
*verification run*: a job of the market's, with the same spec, queued for another provider
(another wallet, and none of the first provider's GPUs), that runs while the job's challenge
window, extended once for it, is open. Its result is compared with the job's (exit code and
canonical output digest):

- the same: the job passed; its re-runner is paid from the verification pool;
- different: the market challenges the job's result and a third run on yet another provider
  breaks the tie. The majority of the three decides: the provider in the minority loses (the
  job's provider is slashed and the developer refunded; a lying re-runner is not paid); when
  all three differ nobody is slashed and the job is marked non-deterministic.

Everything here runs inside a transaction; the ledger steps the verdicts call for (extend the
window, challenge, rule, pay the re-runners) are sent by ``background/verifier.py``.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import new_id, utcnow
from gpumarket.coordinator.db.models import Job, JobEventRow, Provider
from gpumarket.coordinator.services import lifecycle, reputation
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec, JobState, VerificationMode
from gpumarket.protocol import VerificationState as V

log = logging.getLogger(__name__)

RERUN = "rerun"
"""A verification run's role: the first re-run of a drawn job."""
TIEBREAK = "tiebreak"
"""A verification run's role: the third run after a re-run disagreed."""
ACTIVE_RUN_STATES = (
    JobState.QUEUED.value,
    JobState.ASSIGNED.value,
    JobState.RUNNING.value,
)


def is_sampled(job: Job) -> bool:
    """A developer's job asking for sampled verification (not a verification run itself)."""
    if job.verifies_job_id is not None:
        return False
    return JobSpec.model_validate(job.spec).verification is VerificationMode.SAMPLED


def premium_micros(job: Job, amount_micros: int, premium_bps: int) -> int:
    """What a sampled job pays into the verification pool for ``amount_micros`` of work:
    ``premium_bps`` of it, never more than what its escrow holds beyond the amount."""
    if not is_sampled(job):
        return 0
    return max(0, min(amount_micros * premium_bps // 10_000, job.escrow_micros - amount_micros))


def move(session: Session, job: Job, to: V, reason: str) -> None:
    """Record a step of ``job``'s verification in its history (``kind`` verify)."""
    previous = job.verification
    job.verification = to.value
    session.add(
        JobEventRow(
            job_id=job.id,
            kind="verify",
            from_state=previous,
            to_state=to.value,
            reason=reason,
            at=utcnow(),
        )
    )


def draw(session: Session, job: Job, settings: CoordinatorSettings) -> None:
    """After a sampled job's result is committed: draw, with its provider's sampling rate,
    whether another provider re-runs it. The draw is secret (the provider learns it only when
    the window is extended, after its result is committed) and recorded with the rate."""
    if job.verification is not None or not is_sampled(job) or job.provider_id is None:
        return
    provider = session.get(Provider, job.provider_id)
    if provider is None:
        return
    rate = reputation.sampling_rate(
        provider.score, provider.reruns_passed, provider.reruns_failed, settings
    )
    job.sampling_rate = rate
    if secrets.randbelow(1_000_000) >= round(rate * 1_000_000):
        move(session, job, V.NOT_DRAWN, f"not drawn for a re-run (p = {rate:.3f})")
        return
    run = spawn(session, job, RERUN, {job.provider_id}, settings)
    move(
        session,
        job,
        V.RERUNNING,
        f"drawn for a re-run (p = {rate:.3f}): {run.id} runs it again on another provider",
    )


def rerun_allowance_seconds(job: Job, settings: CoordinatorSettings) -> int:
    """How much longer a drawn job's window must stay open for its re-run: the queue time a
    re-run may wait for a provider, its own time limit, and a minute to report."""
    spec = JobSpec.model_validate(job.spec)
    return settings.verification_queue_seconds + spec.max_duration_seconds + 60


def same_host_providers(session: Session, provider_ids: set[str]) -> set[str]:
    """``provider_ids`` and every provider that shares a GPU with one of them (the same
    machine registered under another wallet, as far as the market can tell)."""
    uuids: set[str] = set()
    for gpus in session.scalars(select(Provider.gpus).where(Provider.id.in_(provider_ids))):
        uuids.update(str(g.get("uuid")) for g in gpus or [] if g.get("uuid"))
    twins = set(provider_ids)
    if uuids:
        for provider_id, gpus in session.execute(
            select(Provider.id, Provider.gpus).where(Provider.online.is_(True))
        ):
            if any(str(g.get("uuid")) in uuids for g in gpus or []):
                twins.add(provider_id)
    return twins


def spawn(
    session: Session,
    parent: Job,
    role: str,
    exclude: set[str],
    settings: CoordinatorSettings,
) -> Job:
    """Queue a verification run of ``parent``: the market's job, the developer's spec, on a
    provider other than ``exclude`` and their twins, paid from the verification pool."""
    now = utcnow()
    run = Job(
        id=new_id("job"),
        owner_id=parent.owner_id,
        state=JobState.SUBMITTED.value,
        spec=parent.spec,
        spec_hash=parent.spec_hash,
        gpu_count=parent.gpu_count,
        max_price_micros=parent.max_price_micros,
        escrow_micros=parent.escrow_micros,
        created_at=now,
        updated_at=now,
        gpu_uuids=[],
        excluded_provider_ids=sorted(same_host_providers(session, exclude)),
        attempts=0,
        match_failures=0,
        log_bytes=0,
        log_truncated=False,
        outputs_stored=False,
        verifies_job_id=parent.id,
        verification_role=role,
        queue_deadline_at=now + timedelta(seconds=settings.verification_queue_seconds),
        next_match_at=now,
    )
    session.add(run)
    parent.verification_runs = [*(parent.verification_runs or []), run.id]
    lifecycle.record_submission(session, run, now)
    lifecycle.transition(session, run, JobState.QUEUED, f"the market's {role} of {parent.id}", now)
    return run


def runs_of(session: Session, parent: Job) -> list[Job]:
    """The verification runs of ``parent``, oldest first."""
    return list(
        session.scalars(
            select(Job).where(Job.verifies_job_id == parent.id).order_by(Job.created_at, Job.id)
        )
    )


def _result(job: Job) -> tuple[int | None, str | None]:
    """What runs are compared by: the exit code and the canonical output digest (the
    archive's hash from a daemon that predates the digest)."""
    return job.exit_code, job.output_digest or job.output_hash


def _describe(job: Job) -> str:
    exit_code, digest = _result(job)
    return f"{job.provider_id} (exit {exit_code}, outputs {digest or 'none'})"


def run_reported(session: Session, run: Job, parent: Job, settings: CoordinatorSettings) -> None:
    """A verification run's result is in (``run`` is COMMITTED, its ``parent`` locked by the
    caller): compare, and move the parent's verification on."""
    state = V(parent.verification) if parent.verification else None
    if state is V.RERUNNING and parent.state != JobState.COMMITTED.value:
        # the window ended first: nothing can be challenged any more; the run is still paid
        window_closed(session, parent)
        _verdict(session, run, V.PASSED)
        return
    if state is V.RERUNNING and run.verification_role == RERUN:
        if _result(run) == _result(parent):
            move(session, parent, V.PASSED, f"re-run {run.id} agrees: {_describe(run)}")
            _verdict(session, run, V.PASSED)
            lifecycle.reward(session, parent.provider_id, reruns_passed=1)
            return
        tiebreak = spawn(
            session,
            parent,
            TIEBREAK,
            {p for p in (parent.provider_id, run.provider_id) if p},
            settings,
        )
        move(
            session,
            parent,
            V.DISPUTED,
            f"re-run {run.id} disagrees: {_describe(run)} against the provider's "
            f"{_describe(parent)}; the market challenges the result and {tiebreak.id} breaks "
            "the tie",
        )
        return
    if state is V.DISPUTED and run.verification_role == TIEBREAK:
        _decide(session, parent, run)
        return
    log.info("verification run %s of %s reported while it is %s", run.id, parent.id, state)
    _verdict(session, run, V.PASSED)  # a run the market asked for is paid for its work


def _decide(session: Session, parent: Job, tiebreak: Job) -> None:
    """The majority of the three independent runs decides."""
    rerun = next(
        (
            r
            for r in runs_of(session, parent)
            if r.verification_role == RERUN and r.state == JobState.COMMITTED.value
        ),
        None,
    )
    if rerun is None:  # cannot happen: the tie-break exists because the re-run reported
        return
    mine, first, third = _result(parent), _result(rerun), _result(tiebreak)
    evidence = f"{_describe(parent)}; re-run {_describe(rerun)}; tie-break {_describe(tiebreak)}"
    if third == first:
        move(
            session,
            parent,
            V.PROVIDER_WRONG,
            f"two independent runs agree against the provider: {evidence}",
        )
        _verdict(session, rerun, V.PASSED)
        _verdict(session, tiebreak, V.PASSED)
        lifecycle.reward(session, parent.provider_id, reruns_failed=1)
    elif third == mine:
        move(
            session,
            parent,
            V.PROVIDER_RIGHT,
            f"the tie-break agrees with the provider, the re-run was wrong: {evidence}",
        )
        _verdict(session, rerun, V.PROVIDER_WRONG)
        _verdict(session, tiebreak, V.PASSED)
        lifecycle.reward(session, parent.provider_id, reruns_passed=1)
        lifecycle.reward(session, rerun.provider_id, reruns_failed=1)
    else:
        move(
            session,
            parent,
            V.NO_MAJORITY,
            f"every run differs, so the job is not deterministic: nobody is slashed, the "
            f"result stands and the runs are paid: {evidence}",
        )
        _verdict(session, rerun, V.NO_MAJORITY)
        _verdict(session, tiebreak, V.NO_MAJORITY)


def _verdict(session: Session, run: Job, outcome: V) -> None:
    """Mark a verification run paid-to-be (it agreed with the verdict, or no majority) or not
    (its result was in the minority); ``background/verifier.py`` pays or closes it."""
    run.verification = outcome.value
    session.add(
        JobEventRow(
            job_id=run.id,
            kind="verify",
            from_state=None,
            to_state=outcome.value,
            reason="agrees with the verdict: paid from the verification pool"
            if outcome is not V.PROVIDER_WRONG
            else "its result is in the minority: not paid",
            at=utcnow(),
        )
    )


def run_ended(session: Session, run: Job) -> None:
    """A verification run ended without a result (expired, failed, cancelled): a re-run
    leaves the job's result standing unverified; a missing tie-break leaves the dispute to the
    operator's ruling."""
    if run.verifies_job_id is None or run.verification is not None:
        return
    run.verification = V.EXPIRED.value  # handled: the verifier loop does not come back to it
    parent = session.get(Job, run.verifies_job_id)
    if parent is None:
        return
    if parent.verification == V.RERUNNING.value and run.verification_role == RERUN:
        move(
            session,
            parent,
            V.EXPIRED,
            f"re-run {run.id} ended without a result ({run.state}): the result stands unverified",
        )
    elif parent.verification == V.DISPUTED.value and run.verification_role == TIEBREAK:
        session.add(
            JobEventRow(
                job_id=parent.id,
                kind="verify",
                from_state=V.DISPUTED.value,
                to_state=V.DISPUTED.value,
                reason=f"tie-break {run.id} ended without a result ({run.state}): the "
                "operator rules on the dispute",
                at=utcnow(),
            )
        )


def window_closed(session: Session, job: Job) -> None:
    """The job settled while its re-run was still going: it stands unverified, the run is
    called off."""
    if job.verification != V.RERUNNING.value:
        return
    move(session, job, V.EXPIRED, "the window ended before the re-run reported")
    for run in runs_of(session, job):
        if run.state == JobState.QUEUED.value:
            lifecycle.expire_run(session, run, "the job it verifies settled first")
