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
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import new_id, utcnow
from gpumarket.coordinator.db.models import Job, JobEventRow, OfferRow, Provider
from gpumarket.coordinator.services import lifecycle, reputation
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec, JobState, VerificationMode
from gpumarket.protocol import VerificationState as V
from gpumarket.protocol.pricing import replica_count, verification_premium_micros
from gpumarket.protocol.providers import CPU_OFFER

log = logging.getLogger(__name__)

RERUN = "rerun"
"""A verification run's role: the first re-run of a drawn job."""
TIEBREAK = "tiebreak"
"""A verification run's role: the run that breaks a tie (after a re-run disagreed)."""
REPLICA = "replica"
"""A verification run's role: one of a redundant job's other runs, started with it."""
KNOWN_ANSWER = "known_answer"
"""A verification run's role: a replay of an already verified job on a newcomer or suspect
provider (pinned to it), its result compared with the verified one."""
LIVENESS = "liveness"
"""A verification run's role: a liveness re-run of a job that is not deterministic."""
LIVENESS_MIN_TIME = 0.25
"""A liveness check fails a job whose billed time is under this share of its re-run's (a
provider that skipped the work reports at once; faster hardware is allowed for)."""
KNOWN_ANSWER_CANDIDATES = 50
"""How many recently verified jobs a known-answer replay is drawn from."""
ACTIVE_RUN_STATES = (
    JobState.QUEUED.value,
    JobState.ASSIGNED.value,
    JobState.RUNNING.value,
)


def _mode(job: Job) -> VerificationMode:
    """A developer's job's verification mode (a verification run itself has none)."""
    if job.verifies_job_id is not None:
        return VerificationMode.OPTIMISTIC
    return JobSpec.model_validate(job.spec).verification


def is_sampled(job: Job) -> bool:
    """A developer's job asking for sampled verification (not a verification run itself)."""
    return _mode(job) is VerificationMode.SAMPLED


def is_redundant(job: Job) -> bool:
    """A developer's job asking to be run by several providers at once."""
    return _mode(job) is VerificationMode.REDUNDANT


def premium_micros(job: Job, amount_micros: int, premium_bps: int) -> int:
    """What a verified job pays into the verification pool for ``amount_micros`` of work (a
    sampled job ``premium_bps`` of it, a redundant one the amount once more per replica on
    top), never more than what its escrow holds beyond the amount: the contract's rule."""
    if job.verifies_job_id is not None:
        return 0
    spec = JobSpec.model_validate(job.spec)
    premium = verification_premium_micros(spec, amount_micros, premium_bps)
    return max(0, min(premium, job.escrow_micros - amount_micros))


def start_replicas(session: Session, job: Job) -> None:
    """A redundant job just queued: queue its ``redundancy - 1`` replicas with it, so that
    ``redundancy`` distinct providers run it at once (matching keeps the runs of one job on
    distinct providers and hosts: :func:`group_providers`). The premium in its escrow pays
    them from the verification pool."""
    if job.verification is not None or not is_redundant(job):
        return
    spec = JobSpec.model_validate(job.spec)
    replicas = [
        spawn(session, job, REPLICA, set(), queue_deadline=job.queue_deadline_at)
        for _ in range(replica_count(spec))
    ]
    move(
        session,
        job,
        V.RERUNNING,
        f"runs on {len(replicas) + 1} providers at once ({', '.join(r.id for r in replicas)} "
        "besides its own run); the majority's result stands",
    )


def group_providers(session: Session, job: Job) -> set[str]:
    """The providers matching must keep ``job`` away from because another run of the same
    job (the developer's own, a replica, a re-run, a tie-break) is or was on them, and their
    twins on the same hosts. Empty for a job outside verification (no query)."""
    if job.verifies_job_id is None and not job.verification_runs:
        return set()
    root = job.verifies_job_id or job.id
    taken = set(
        session.scalars(
            select(Job.provider_id).where(
                or_(Job.id == root, Job.verifies_job_id == root),
                Job.id != job.id,
                Job.provider_id.is_not(None),
            )
        )
    )
    return same_host_providers(session, {p for p in taken if p}) if taken else set()


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
    if is_redundant(job) and job.verification in (V.RERUNNING.value, V.DISPUTED.value):
        tally(session, job, settings)  # its replicas may have reported first
        return
    if job.verification is not None or job.provider_id is None:
        return
    provider = session.get(Provider, job.provider_id)
    if provider is None:
        return
    if _liveness_candidate(job, provider, settings):
        _draw_liveness(session, job, provider, settings)
        return
    if not is_sampled(job):
        return
    rate = _provider_rate(provider, settings)
    job.sampling_rate = rate
    if not _drawn(rate):
        move(session, job, V.NOT_DRAWN, f"not drawn for a re-run (p = {rate:.3f})")
        return
    run = spawn(
        session,
        job,
        RERUN,
        {job.provider_id},
        queue_deadline=_queue_deadline(settings),
    )
    move(
        session,
        job,
        V.RERUNNING,
        f"drawn for a re-run (p = {rate:.3f}): {run.id} runs it again on another provider",
    )


def _liveness_candidate(job: Job, provider: Provider, settings: CoordinatorSettings) -> bool:
    """A developer's optimistic job that is not deterministic, on a provider the market does
    not trust yet (a newcomer, or a suspect after a failed re-run): it may be sampled for
    liveness, never compared byte for byte."""
    if job.verifies_job_id is not None or not settings.liveness_sampling:
        return False
    spec = JobSpec.model_validate(job.spec)
    if spec.verification is not VerificationMode.OPTIMISTIC or spec.deterministic:
        return False
    return _untrusted(provider, settings)


def _draw_liveness(
    session: Session, job: Job, provider: Provider, settings: CoordinatorSettings
) -> None:
    """Draw, with the provider's sampling rate, a liveness re-run on another provider, paid
    from the verification pool. It never challenges, so the window is left alone."""
    rate = _provider_rate(provider, settings)
    if not _drawn(rate):
        return  # nothing recorded: the developer asked for no verification
    job.sampling_rate = rate
    run = spawn(
        session,
        job,
        LIVENESS,
        {provider.id},
        queue_deadline=_queue_deadline(settings),
    )
    move(
        session,
        job,
        V.LIVENESS_CHECK,
        f"drawn for a liveness check (p = {rate:.3f}): {run.id} runs it on another provider",
    )


def _liveness_reported(session: Session, run: Job, parent: Job) -> None:
    """A liveness re-run reported: the job ran when the exit codes agree, both wrote outputs
    or neither did, and its billed time is not a small fraction of the re-run's. The re-run
    is paid either way; a failed check costs the provider score, never stake."""
    _verdict(session, run, V.PASSED)
    if parent.verification != V.LIVENESS_CHECK.value:
        return
    mine, theirs = parent.usage_seconds or 0.0, run.usage_seconds or 0.0
    ran = (
        parent.exit_code == run.exit_code
        and bool(parent.output_hash) == bool(run.output_hash)
        and mine >= LIVENESS_MIN_TIME * theirs
    )
    evidence = (
        f"the provider's exit {parent.exit_code} in {mine:.1f}s, outputs "
        f"{'yes' if parent.output_hash else 'none'}; re-run {run.id} on {run.provider_id}: "
        f"exit {run.exit_code} in {theirs:.1f}s, outputs {'yes' if run.output_hash else 'none'}"
    )
    if ran:
        move(session, parent, V.PASSED, f"the liveness re-run finds the job ran: {evidence}")
        lifecycle.reward(session, parent.provider_id, reruns_passed=1)
    else:
        move(
            session,
            parent,
            V.LIVENESS_FAILED,
            f"the liveness re-run suggests the job did not run (not slashed: its outputs may "
            f"differ by nature): {evidence}",
        )
        lifecycle.reward(session, parent.provider_id, reruns_failed=1)


def _provider_rate(provider: Provider, settings: CoordinatorSettings) -> float:
    """The provider's sampling rate p, from its public counters."""
    return reputation.sampling_rate(
        provider.score, provider.reruns_passed, provider.reruns_failed, settings
    )


def _drawn(rate: float) -> bool:
    """A secret draw with probability ``rate`` (the provider learns it only from its effect)."""
    return secrets.randbelow(1_000_000) < round(rate * 1_000_000)


def _queue_deadline(settings: CoordinatorSettings) -> datetime:
    """How long a run the market starts now may wait for a provider."""
    return utcnow() + timedelta(seconds=settings.verification_queue_seconds)


def _untrusted(provider: Provider, settings: CoordinatorSettings) -> bool:
    """A newcomer, or a suspect after a failed re-run: the providers the market checks itself."""
    return reputation.is_newcomer(provider) or reputation.is_suspect(
        provider.reruns_passed, provider.reruns_failed, settings
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
    queue_deadline: datetime | None,
    pinned_to: str | None = None,
) -> Job:
    """Queue a verification run of ``parent``: the market's job, the developer's spec, on a
    provider other than ``exclude`` and their twins (and the job's other runs', which
    matching adds), paid from the verification pool."""
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
        pinned_provider_id=pinned_to,
        queue_deadline_at=queue_deadline or now,
        next_match_at=now,
    )
    session.add(run)
    if role != KNOWN_ANSWER:  # a replay checks its provider, not the job it replays
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


REPORTED_RUN_STATES = (JobState.COMMITTED.value, JobState.SETTLED.value)
"""A verification run in these states has a result (SETTLED: already paid)."""


def run_reported(session: Session, run: Job, parent: Job, settings: CoordinatorSettings) -> None:
    """A verification run's result is in (``run`` is COMMITTED, its ``parent`` locked by the
    caller): count it, and move the parent's verification on."""
    if run.verification_role == KNOWN_ANSWER:
        _known_answer_reported(session, run, parent)
        return
    if run.verification_role == LIVENESS:
        _liveness_reported(session, run, parent)
        return
    state = V(parent.verification) if parent.verification else None
    if state in (V.RERUNNING, V.DISPUTED):
        if parent.state in (JobState.COMMITTED.value, JobState.DISPUTED.value):
            tally(session, parent, settings)
        elif not _before_commit(parent):
            # the window ended first: nothing can be challenged any more; the run is still paid
            window_closed(session, parent)
            _verdict(session, run, V.PASSED)
        # else: a replica ahead of the job's own run; the count happens at its commit
        return
    if run.verification is not None:
        return  # called off, or judged already
    if state in (V.PASSED, V.PROVIDER_RIGHT, V.PROVIDER_WRONG) and is_redundant(parent):
        # a replica reporting after the majority was reached is paid when it agrees with it
        agrees = _result(run) == _winner(session, parent)
        _verdict(session, run, V.PASSED if agrees else V.PROVIDER_WRONG)
        if not agrees:
            lifecycle.reward(session, run.provider_id, reruns_failed=1)
        return
    log.info("verification run %s of %s reported while it is %s", run.id, parent.id, state)
    _verdict(session, run, V.PASSED)  # a run the market asked for is paid for its work


def _known_answer_reported(session: Session, run: Job, parent: Job) -> None:
    """A known-answer replay reported: its provider passes (and is paid from the pool) when it
    returns the verified result, and fails a re-run (the score drops, its sampled jobs are
    re-run at the suspect rate) and goes unpaid when it does not."""
    expected = _winner(session, parent)
    if _result(run) == expected:
        _verdict(session, run, V.PASSED)
        lifecycle.reward(session, run.provider_id, reruns_passed=1)
        return
    session.add(
        JobEventRow(
            job_id=run.id,
            kind="verify",
            from_state=None,
            to_state=V.PROVIDER_WRONG.value,
            reason=f"a replay of verified job {parent.id}: {_describe(run)} where the verified "
            f"result is exit {expected[0]}, outputs {expected[1]}",
            at=utcnow(),
        )
    )
    _verdict(session, run, V.PROVIDER_WRONG)
    lifecycle.reward(session, run.provider_id, reruns_failed=1)


def needs_known_answer(
    provider: Provider, planted: int, active: int, settings: CoordinatorSettings
) -> bool:
    """Whether a newcomer or suspect provider is due a known-answer replay: it has none
    running, and its replays so far are fewer than ``known_answer_share`` of its finished
    jobs plus one, so a provider gets its first at once (a newcomer's costs the pool one run,
    once) and then one per 1 / ``known_answer_share`` jobs while it stays a suspect."""
    if settings.known_answer_share <= 0 or active:
        return False
    if not _untrusted(provider, settings):
        return False
    return planted < settings.known_answer_share * (reputation.finished_jobs(provider) + 1)


def plant_known_answer(
    session: Session, provider: Provider, settings: CoordinatorSettings
) -> Job | None:
    """Queue, for ``provider`` alone, a replay of a recently verified job it had no part in
    and can run (one of its GPU models, or a CPU job); None when there is none."""
    models = set(
        session.scalars(select(OfferRow.gpu_model).where(OfferRow.provider_id == provider.id))
    )
    verified = [
        job
        for job in session.scalars(
            select(Job)
            .where(
                Job.verification.in_([V.PASSED.value, V.PROVIDER_RIGHT.value]),
                Job.verifies_job_id.is_(None),
                Job.provider_id != provider.id,
            )
            .order_by(Job.updated_at.desc())
            .limit(KNOWN_ANSWER_CANDIDATES)
        )
        if (job.offer_gpu_model or CPU_OFFER) in models and _comparable(job)
    ]
    runners = {
        job.id: set(session.scalars(select(Job.provider_id).where(Job.verifies_job_id == job.id)))
        for job in verified
    }
    fresh = [job for job in verified if provider.id not in runners[job.id]]
    if not fresh:
        return None
    parent = fresh[secrets.randbelow(len(fresh))]
    return spawn(
        session,
        parent,
        KNOWN_ANSWER,
        set(),
        queue_deadline=_queue_deadline(settings),
        pinned_to=provider.id,
    )


def _comparable(job: Job) -> bool:
    """A verified job whose result is known byte for byte: deterministic, and verified by a
    majority (sampled or redundant), not by a liveness check."""
    spec = JobSpec.model_validate(job.spec)
    return spec.deterministic and spec.verification is not VerificationMode.OPTIMISTIC


def _before_commit(job: Job) -> bool:
    """Whether ``job``'s own run has not reported yet (a redundant job's replicas start with
    it, so they may finish first)."""
    return job.state in (JobState.SUBMITTED.value, *ACTIVE_RUN_STATES)


def _winner(session: Session, parent: Job) -> tuple[int | None, str | None]:
    """The result a decided verification stands on: the job's own, unless the majority was
    against it (then the result of the runs that passed)."""
    if parent.verification != V.PROVIDER_WRONG.value:
        return _result(parent)
    for run in runs_of(session, parent):
        if run.verification == V.PASSED.value:
            return _result(run)
    return None, None


def tally(session: Session, parent: Job, settings: CoordinatorSettings) -> None:
    """Count the independent results of ``parent`` (its own, committed, and its reported
    runs; one vote per provider) and decide as soon as the count can no longer change the
    outcome. The rule, for a job run ``planned`` times (the runs that ended without a result
    do not count):

    - a result that more than half of ``planned`` agree on is the job's; whoever is in the
      minority loses (the job's provider is slashed, a replica or re-runner is not paid);
    - every run reported and no majority: one tie-break run on yet another provider when one
      more vote could make a majority (a re-run that disagreed with the job); otherwise no
      majority: nobody is slashed, the job is marked non-deterministic, the runs are paid;
    - fewer than two results in all (the runs ended without one): the result stands
      unverified.
    """
    runs = runs_of(session, parent)
    reported = [r for r in runs if r.state in REPORTED_RUN_STATES and r.exit_code is not None]
    pending = [
        r for r in runs if r.state == JobState.SUBMITTED.value or r.state in ACTIVE_RUN_STATES
    ]
    votes: dict[tuple[int | None, str | None], set[str]] = {}
    for job in (parent, *reported):
        votes.setdefault(_result(job), set()).add(job.provider_id or job.id)
    planned = 1 + len(reported) + len(pending)
    needed = planned // 2 + 1
    best, voters = max(votes.items(), key=lambda item: len(item[1]))
    evidence = "; ".join(
        [f"the provider's {_describe(parent)}"]
        + [f"{r.verification_role} {r.id} {_describe(r)}" for r in reported]
    )
    if len(voters) >= needed and planned >= 2:
        _decided(session, parent, best, reported, evidence)
        return
    if pending:
        return
    if planned < 2:
        move(
            session,
            parent,
            V.EXPIRED,
            "no other run reported a result: the result stands unverified",
        )
        return
    has_tiebreak = any(r.verification_role == TIEBREAK for r in runs)
    if not has_tiebreak and len(voters) + 1 >= (planned + 1) // 2 + 1:
        tiebreak = spawn(
            session,
            parent,
            TIEBREAK,
            {p for p in (parent.provider_id, *(r.provider_id for r in runs)) if p},
            queue_deadline=_queue_deadline(settings),
        )
        move(
            session,
            parent,
            V.DISPUTED,
            f"the runs disagree ({evidence}); the market challenges the result and "
            f"{tiebreak.id} breaks the tie",
        )
        return
    move(
        session,
        parent,
        V.NO_MAJORITY,
        f"the runs differ with no majority, so the job is not deterministic: nobody is "
        f"slashed, the result stands and the runs are paid: {evidence}",
    )
    for run in reported:
        _verdict(session, run, V.NO_MAJORITY)


def _decided(
    session: Session,
    parent: Job,
    winner: tuple[int | None, str | None],
    reported: list[Job],
    evidence: str,
) -> None:
    """A majority agrees on ``winner``: the verdict for the job and for every reported run."""
    if winner == _result(parent):
        if parent.verification == V.DISPUTED.value:
            move(
                session,
                parent,
                V.PROVIDER_RIGHT,
                f"the majority of independent runs agrees with the provider: {evidence}",
            )
        else:
            move(
                session,
                parent,
                V.PASSED,
                f"the majority of independent runs agrees with the provider: {evidence}",
            )
        lifecycle.reward(session, parent.provider_id, reruns_passed=1)
    else:
        move(
            session,
            parent,
            V.PROVIDER_WRONG,
            f"the majority of independent runs agrees against the provider: {evidence}",
        )
        lifecycle.reward(session, parent.provider_id, reruns_failed=1)
    for run in reported:
        if run.verification is not None:
            continue  # judged already
        if _result(run) == winner:
            _verdict(session, run, V.PASSED)
        else:
            _verdict(session, run, V.PROVIDER_WRONG)
            lifecycle.reward(session, run.provider_id, reruns_failed=1)


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


def run_ended(session: Session, run: Job, settings: CoordinatorSettings) -> None:
    """A verification run ended without a result (expired, failed, cancelled): a re-run
    leaves the job's result standing unverified; a missing tie-break leaves the dispute to the
    operator's ruling; a missing replica is one vote fewer (the others are counted again)."""
    if run.verifies_job_id is None or run.verification is not None:
        return
    run.verification = V.EXPIRED.value  # handled: the verifier loop does not come back to it
    parent = lifecycle.load_job_for_update(session, run.verifies_job_id)
    if run.verification_role == LIVENESS:
        if parent.verification == V.LIVENESS_CHECK.value:
            move(
                session,
                parent,
                V.EXPIRED,
                f"liveness re-run {run.id} ended without a result ({run.state}): not checked",
            )
        return
    if run.verification_role == REPLICA:
        if parent.state in (JobState.COMMITTED.value, JobState.DISPUTED.value) and (
            parent.verification in (V.RERUNNING.value, V.DISPUTED.value)
        ):
            tally(session, parent, settings)
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
    """The job settled (or ended without a result) while its other runs were still going: it
    stands unverified. The runs that reported are paid for their work; the runs still queued
    are called off, and so are the running ones of a job that never had a result (nobody pays
    for them: the developer's escrow went back whole)."""
    if job.verification != V.RERUNNING.value:
        return
    committed = job.state in (JobState.SETTLED.value, JobState.REFUNDED.value) and (
        job.exit_code is not None
    )
    if committed:
        move(session, job, V.EXPIRED, "the window ended before its other runs reported")
    else:
        move(session, job, V.EXPIRED, f"the job ended {job.state} before its runs were compared")
    # the job is locked; a run another transaction holds (its report, which locks the run and
    # then this job; the matcher) is skipped, never waited for: it reports and is paid later
    runs = session.scalars(
        select(Job).where(Job.verifies_job_id == job.id).with_for_update(skip_locked=True)
    )
    for run in list(runs):
        if run.state in REPORTED_RUN_STATES and run.verification is None:
            _verdict(session, run, V.PASSED)
        elif run.state == JobState.QUEUED.value or not committed:
            lifecycle.call_off_run(session, run, f"the job it verifies ended {job.state} first")
