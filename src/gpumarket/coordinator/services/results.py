"""The provider's result: the money step that starts the challenge window (-> COMMITTED).

A result walks router -> this service -> the settlement backend (-> the outbox, on-chain) and
back here, which applies it to the lifecycle once: intent (the report checked and, on-chain,
the signed claim recorded, under the job's row lock), ledger call (no transaction open),
apply. A crash between the parts leaves the claim recorded for the resume loop.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import jobs, lifecycle, providers, verification
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.settlement import Committed, SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import GpumarketError, InvalidRequest, InvalidTransition
from gpumarket.protocol import JobState, ResultReport


def report_result(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    principal: Principal,
    job_id: str,
    report: ResultReport,
    settings: CoordinatorSettings,
) -> Job:
    """Check the provider's result, commit it on the ledger, then mark the job COMMITTED. A
    verification run's result is compared with the job it re-runs instead (no ledger call:
    the verifier loop pays it once the verdict is in)."""
    with session_scope(factory) as session:
        job = providers.own_job_for_update(session, principal, job_id)
        if job.verifies_job_id is not None:
            return _report_run(session, settlement, job, report, settings)
        if job.state == JobState.COMMITTED.value or settlement.has_claim(job):
            return jobs.with_chain_steps(job)
        late = settlement.takes_late_claim(job)
        if job.state == JobState.ASSIGNED.value:
            lifecycle.start(session, job, settings)
        if job.state != JobState.RUNNING.value and not late:
            raise InvalidTransition(
                f"job {job_id} is {job.state}; only a RUNNING job takes a result"
            )
        providers.check_outputs(job, report)
        if report.claim is not None:
            _check_claim_bound(job, report, late)
        provider = session.get(Provider, job.provider_id)
        assert provider is not None
        intent = settlement.claim_intent(session, job, report, provider.address)
    try:
        committed = settlement.commit(intent)
    except GpumarketError as exc:
        if exc.status_code < 500:  # refused, not unreachable: nothing is left to resume
            with session_scope(factory) as session:
                settlement.drop_claim(session, lifecycle.load_job_for_update(session, job_id))
        raise
    return apply_committed(factory, settlement, job_id, committed, settings)


def _report_run(
    session: Session,
    settlement: SettlementBackend,
    run: Job,
    report: ResultReport,
    settings: CoordinatorSettings,
) -> Job:
    """A verification run's result: checked like any result (outputs, the claim's bound and,
    on-chain, the re-runner's signature over it for the job it re-runs), recorded, and
    compared (services/verification.py)."""
    if run.state != JobState.RUNNING.value and run.state != JobState.ASSIGNED.value:
        return jobs.with_chain_steps(run)  # a repeated report, or a run called off
    if run.state == JobState.ASSIGNED.value:
        lifecycle.start(session, run, settings)
    providers.check_outputs(run, report)
    if report.claim is not None:
        _check_claim_bound(run, report, False)
    parent = lifecycle.load_job_for_update(session, run.verifies_job_id or "")
    provider = session.get(Provider, run.provider_id)
    assert provider is not None
    settlement.check_rerun_claim(parent, run, report, provider.address)
    lifecycle.commit(
        session,
        run,
        report.exit_code,
        report.usage_seconds,
        settings,
        claimed_micros=report.claim.amount_micros if report.claim is not None else None,
        window_end=utcnow(),
    )
    run.fee_micros = 0  # the pool pays a re-runner in full
    run.pending_result = report.model_dump(mode="json")
    verification.run_reported(session, run, parent, settings)
    return jobs.with_chain_steps(run)


def _check_claim_bound(job: Job, report: ResultReport, late: bool) -> None:
    """A signed claim over what the seconds allow is refused, never cut down."""
    assert report.claim is not None
    until = job.finished_at if late and job.finished_at else utcnow()
    bound = lifecycle.billable_micros(job, report.usage_seconds, until)
    if report.claim.amount_micros > bound:
        billed = lifecycle.billed_usage(job, report.usage_seconds, until)
        raise InvalidRequest(
            f"the claim of {report.claim.amount_micros} micros is over the {bound} micros that "
            f"{billed:.1f}s at the agreed price allow (the {report.usage_seconds:.1f}s "
            "reported, billed up to the job's max_duration_seconds and never beyond the "
            "time since its assignment); sign a claim for at most that"
        )


def apply_committed(
    factory: sessionmaker[Session],
    settlement: SettlementBackend,
    job_id: str,
    committed: Committed,
    settings: CoordinatorSettings,
) -> Job:
    """Record a committed claim in its own transaction (the request, or the resume loop)."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        commit_if_recorded(session, settlement, job, committed, settings)
        session.flush()
        session.refresh(job, ["chain_txs"])
        return job


def commit_if_recorded(
    session: Session,
    settlement: SettlementBackend,
    job: Job,
    committed: Committed,
    settings: CoordinatorSettings,
) -> bool:
    """Apply ``committed`` to ``job``: COMMITTED until the window ends, or, for a run
    cancelled midway, its seconds' claim recorded (it stays CANCELLED)."""
    report = settlement.apply_commit(session, job, committed)
    if report is None:
        return False
    if job.state == JobState.RUNNING.value:
        lifecycle.commit(
            session,
            job,
            report.exit_code,
            report.usage_seconds,
            settings,
            claimed_micros=committed.amount_micros,
            window_end=committed.window_end,
        )
        if job.amount_micros is not None:
            job.premium_micros = verification.premium_micros(
                job, job.amount_micros, settings.verification_premium_bps
            )
        verification.draw(session, job, settings)
    elif committed.amount_micros is not None:
        job.amount_micros = committed.amount_micros
    return True
