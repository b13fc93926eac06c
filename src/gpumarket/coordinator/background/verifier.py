"""The verifier loop: the ledger steps that verification by re-execution calls for.

services/verification.py decides (in the transactions that record results); this loop sends
what the decisions need, each as intent / ledger call / apply like every money step:

1. extend the challenge window of a job drawn for a re-run, once, so the re-run ends in it;
2. challenge a result a re-run or the majority of a redundant job's runs disagrees with
   (the market's verifier role, no bond);
3. apply the ruling the majority of independent runs implies (the arbiter's ``resolve``);
4. pay the re-runners whose results agree with the verdict from the verification pool (and
   close, unpaid, a run in the minority);
5. close a verification that can no longer finish: a re-run that ended without a result, or a
   job that settled while its re-run was still going;
6. queue known-answer replays for newcomer and suspect providers (their share of work that
   replays an already verified job, pinned to them).

It runs in the replica holding the settlement lease; every step is keyed by job and step, so
repeating one after a crash repeats its outcome.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import (
    chain_state,
    disputes,
    lifecycle,
    reputation,
    verification,
)
from gpumarket.coordinator.services.settlement import RerunIntent, SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import GpumarketError
from gpumarket.protocol import JobState, ResultReport
from gpumarket.protocol import VerificationState as V
from gpumarket.protocol.jobs import VERIFICATION_DECIDED

log = logging.getLogger(__name__)

BATCH = 50
"""Jobs each step takes per tick."""
MARKET_CHALLENGE = (
    "challenged by the market: another run of the job, on another provider, disagrees"
)


def verify_tick(
    factory: sessionmaker[Session], settlement: SettlementBackend, settings: CoordinatorSettings
) -> int:
    """One pass of every step; how many steps it applied."""
    return (
        extend_windows(factory, settlement, settings)
        + challenge_disagreements(factory, settlement)
        + apply_verdicts(factory, settlement)
        + pay_runs(factory, settlement)
        + close_stalled(factory, settings)
        + plant_known_answers(factory, settings)
    )


def _ids(factory: sessionmaker[Session], query: object) -> list[str]:
    with session_scope(factory) as session:
        return list(session.scalars(query))  # type: ignore[call-overload]


def extend_windows(
    factory: sessionmaker[Session], settlement: SettlementBackend, settings: CoordinatorSettings
) -> int:
    """Step 1: a drawn job's window covers its re-run."""
    done = 0
    for job_id in _ids(
        factory,
        select(Job.id)
        .where(
            Job.verification == V.RERUNNING.value,
            Job.window_extended.is_(False),
            Job.state == JobState.COMMITTED.value,
        )
        .limit(BATCH),
    ):
        with session_scope(factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            ref = job.chain_job_id
            seconds = verification.rerun_allowance_seconds(job, settings)
        try:
            extended = settlement.extend_window(ref, seconds)
        except GpumarketError as exc:
            log.warning("could not extend the window of %s for its re-run: %s", job_id, exc)
            _mark_extended(factory, job_id)  # the re-run still races the original window
            continue
        with session_scope(factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            if not job.window_extended:
                settlement.apply_extend(session, job, extended, seconds)
                job.window_extended = True
                done += 1
    return done


def _mark_extended(factory: sessionmaker[Session], job_id: str) -> None:
    with session_scope(factory) as session:
        lifecycle.load_job_for_update(session, job_id).window_extended = True


def challenge_disagreements(factory: sessionmaker[Session], settlement: SettlementBackend) -> int:
    """Step 2: the market challenges a result its other runs disagree with (a re-run, before
    the tie-break; the majority of a redundant job's runs, already decided)."""
    done = 0
    for job_id in _ids(
        factory,
        select(Job.id)
        .where(
            Job.verification.in_([V.DISPUTED.value, V.PROVIDER_WRONG.value]),
            Job.state == JobState.COMMITTED.value,
            Job.verifies_job_id.is_(None),
        )
        .limit(BATCH),
    ):
        with session_scope(factory) as session:
            ref = lifecycle.load_job_for_update(session, job_id).chain_job_id
        try:
            challenged = settlement.verifier_challenge(ref)
        except GpumarketError as exc:
            log.warning("the verifier's challenge of %s was refused: %s", job_id, exc)
            continue
        with session_scope(factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            if job.state == JobState.COMMITTED.value:
                disputes.dispute(session, settlement, job, MARKET_CHALLENGE, challenged)
                done += 1
    return done


def apply_verdicts(factory: sessionmaker[Session], settlement: SettlementBackend) -> int:
    """Step 3: the ruling the majority of independent runs implies, applied automatically."""
    done = 0
    for job_id, state in _rows(
        factory,
        select(Job.id, Job.verification)
        .where(
            Job.state == JobState.DISPUTED.value,
            Job.verification.in_([v.value for v in VERIFICATION_DECIDED]),
        )
        .limit(BATCH),
    ):
        at_fault = state == V.PROVIDER_WRONG.value
        note = {
            V.PROVIDER_WRONG.value: "re-execution: the majority of independent runs disagrees "
            "with the provider",
            V.PROVIDER_RIGHT.value: "re-execution: the majority of independent runs agrees "
            "with the provider",
            V.NO_MAJORITY.value: "re-execution: no majority (the job is not deterministic); "
            "nobody is slashed",
        }[state]
        try:
            disputes.resolve(factory, settlement, job_id, at_fault, note)
        except GpumarketError as exc:
            log.warning("the ruling on %s was refused: %s", job_id, exc)
            continue
        done += 1
    return done


def _rows(factory: sessionmaker[Session], query: object) -> list[tuple[str, str]]:
    with session_scope(factory) as session:
        return [tuple(row) for row in session.execute(query)]  # type: ignore[call-overload]


def pay_runs(factory: sessionmaker[Session], settlement: SettlementBackend) -> int:
    """Step 4: re-runners on the verdict's side are paid; a run in the minority is closed."""
    done = 0
    for run_id, outcome in _rows(
        factory,
        select(Job.id, Job.verification)
        .where(
            Job.verifies_job_id.is_not(None),
            Job.state == JobState.COMMITTED.value,
            Job.verification.is_not(None),
        )
        .limit(BATCH),
    ):
        if outcome == V.PROVIDER_WRONG.value:
            with session_scope(factory) as session:
                run = lifecycle.load_job_for_update(session, run_id)
                lifecycle.reject_run(session, run, "the majority of independent runs disagrees")
            done += 1
            continue
        with session_scope(factory) as session:
            run = lifecycle.load_job_for_update(session, run_id)
            intent = _rerun_intent(session, run)
        try:
            receipt = settlement.pay_rerun(intent)
        except GpumarketError as exc:
            log.warning("paying re-run %s was refused: %s", run_id, exc)
            continue
        with session_scope(factory) as session:
            run = lifecycle.load_job_for_update(session, run_id)
            if run.state == JobState.COMMITTED.value:
                lifecycle.settle_run(
                    session, run, f"paid {run.amount_micros} micros from the verification pool"
                )
                chain_state.record_step(session, run, "pay_rerun", receipt)
                done += 1
    return done


def _rerun_intent(session: Session, run: Job) -> RerunIntent:
    parent = session.get(Job, run.verifies_job_id)
    provider = session.get(Provider, run.provider_id)
    assert parent is not None and provider is not None
    report = ResultReport.model_validate(run.pending_result) if run.pending_result else None
    claim = report.claim if report is not None else None
    return RerunIntent(
        run_id=run.id,
        parent_ref=parent.chain_job_id,
        runner_address=provider.address,
        amount_micros=run.amount_micros or 0,
        result_hash=claim.result_hash if claim else None,
        signature=claim.signature if claim else None,
    )


def close_stalled(factory: sessionmaker[Session], settings: CoordinatorSettings) -> int:
    """Step 5: verifications that can no longer finish."""
    done = 0
    for job_id in _ids(
        factory,
        select(Job.id)
        .where(
            Job.verification == V.RERUNNING.value,
            Job.verifies_job_id.is_(None),
            Job.state.in_(
                [
                    JobState.SETTLED.value,
                    JobState.REFUNDED.value,
                    JobState.FAILED.value,
                    JobState.EXPIRED.value,
                    JobState.CANCELLED.value,
                ]
            ),
        )
        .limit(BATCH),
    ):
        with session_scope(factory) as session:
            verification.window_closed(session, lifecycle.load_job_for_update(session, job_id))
        done += 1
    ended = (JobState.EXPIRED.value, JobState.FAILED.value, JobState.CANCELLED.value)
    parent = aliased(Job)
    for run_id in _ids(
        factory,
        select(Job.id)
        .join(parent, parent.id == Job.verifies_job_id)
        .where(
            Job.state.in_(ended),
            Job.verification.is_(None),
            parent.verification.in_([V.RERUNNING.value, V.DISPUTED.value, V.LIVENESS_CHECK.value]),
        )
        .limit(BATCH),
    ):
        with session_scope(factory) as session:
            verification.run_ended(
                session, lifecycle.load_job_for_update(session, run_id), settings
            )
        done += 1
    return done


def plant_known_answers(factory: sessionmaker[Session], settings: CoordinatorSettings) -> int:
    """Step 6: a replay of an already verified job for each online newcomer or suspect
    provider that is due one (services/verification.py, :func:`needs_known_answer`), so a
    provider returning garbage is caught even when no developer asks for sampling."""
    if settings.known_answer_share <= 0:
        return 0
    done = 0
    with session_scope(factory) as session:
        verified = select(Job.id).where(
            Job.verification == V.PASSED.value, Job.verifies_job_id.is_(None)
        )
        if session.scalar(verified.limit(1)) is None:
            return 0  # nothing verified yet to replay
        finished = Provider.completed_jobs + Provider.failed_jobs + Provider.timed_out_jobs
        candidates = list(
            session.scalars(
                select(Provider.id)
                .where(
                    Provider.online.is_(True),
                    Provider.accepting.is_(True),
                    Provider.banned.is_(False),
                    or_(
                        finished < reputation.NEWCOMER_JOBS,
                        Provider.reruns_failed * settings.suspect_clear_passes
                        > Provider.reruns_passed,
                    ),
                )
                .order_by(func.random())
                .limit(BATCH)
            )
        )
    for provider_id in candidates:
        with session_scope(factory) as session:
            provider = session.get(Provider, provider_id)
            if provider is None:
                continue
            pinned = select(func.count(Job.id)).where(
                Job.pinned_provider_id == provider_id,
                Job.verification_role == verification.KNOWN_ANSWER,
            )
            # a replay that expired unmatched (it did not fit the provider after all) is no check
            planted = session.scalar(pinned.where(Job.state != JobState.EXPIRED.value)) or 0
            active = session.scalar(pinned.where(Job.state.in_(verification.ACTIVE_RUN_STATES)))
            due = verification.needs_known_answer(provider, planted, active or 0, settings)
            if due and verification.plant_known_answer(session, provider, settings) is not None:
                done += 1
    return done
