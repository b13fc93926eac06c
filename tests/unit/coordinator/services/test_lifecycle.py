"""The job state machine: allowed transitions, idempotency, money at each step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import finalizer, lease_expiry, matcher, queue_deadline
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import disputes, jobs, lifecycle, providers, results
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import InvalidRequest, InvalidTransition
from gpumarket.protocol import FailureReport, JobSpec, JobState, ResultReport, Role
from gpumarket.protocol.pricing import cost_micros, fee_micros, max_payment_micros
from tests.helpers import RTX4090, gpu_spec, gpus, heartbeat
from tests.unit.coordinator.conftest import (
    RecordingSettlement,
    add_developer,
    add_provider,
    submit,
)


def job(factory: sessionmaker[Session], job_id: str) -> Job:
    with session_scope(factory) as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def test_transition_table_is_complete_and_enforced(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    assert set(lifecycle.ALLOWED) == set(JobState)
    for state in JobState:
        assert (not lifecycle.ALLOWED[state]) == state.is_terminal
    job_id = submit(factory, add_developer(factory), gpu_spec(), svc_settings, ledger)
    with session_scope(factory) as session:
        row = lifecycle.load_job_for_update(session, job_id)
        assert lifecycle.transition(session, row, JobState.QUEUED, "again") is False
        with pytest.raises(InvalidTransition, match="QUEUED; it cannot become SETTLED"):
            lifecycle.transition(session, row, JobState.SETTLED, "skip ahead")


def test_submit_is_idempotent_by_key(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    dev = add_developer(factory)
    spec = JobSpec.model_validate(gpu_spec())
    with session_scope(factory) as session:
        first = jobs.submit(session, dev, spec, "key-1", ledger, svc_settings)
    with session_scope(factory) as session:
        again = jobs.submit(session, dev, spec, "key-1", ledger, svc_settings)
        assert again.id == first.id
        with pytest.raises(InvalidRequest, match="different spec"):
            other = JobSpec.model_validate(gpu_spec(price="3"))
            jobs.submit(session, dev, other, "key-1", ledger, svc_settings)
    assert ledger.calls == [("fund", first.id)]
    assert first.escrow_micros == max_payment_micros(spec) == 2_000_000  # 2.0/h x 1 GPU x 1 h


def _assigned(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    ledger: RecordingSettlement,
    gpu_count: int = 1,
) -> tuple[str, str]:
    prov = add_provider(factory, settings, heartbeat(gpus(RTX4090, 2), {"RTX4090": "1.2"}))
    job_id = submit(
        factory, add_developer(factory), gpu_spec(gpu=f"RTX4090:{gpu_count}"), settings, ledger
    )
    assert prov.account_id in matcher.match_queued(factory, settings)
    assert job(factory, job_id).provider_id == prov.account_id
    return job_id, prov.account_id


def test_commit_bills_seconds_capped_by_wall_clock_then_settles(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id, provider_id = _assigned(factory, svc_settings, ledger, gpu_count=2)
    principal = Principal(Role.PROVIDER, provider_id)
    with session_scope(factory) as session:
        providers.mark_started(session, principal, job_id, svc_settings)
    # claims 3 hours, but was assigned moments ago: billed for the wall clock only
    results.report_result(
        factory,
        ledger,
        principal,
        job_id,
        ResultReport(exit_code=0, usage_seconds=3 * 3600),
        svc_settings,
    )
    committed = job(factory, job_id)
    assert committed.state == "COMMITTED"
    assert committed.usage_seconds is not None and committed.usage_seconds < 5
    assert committed.amount_micros == cost_micros(1_200_000, 2, committed.usage_seconds)
    assert committed.fee_micros == fee_micros(committed.amount_micros, svc_settings.fee_bps)
    assert finalizer.finalize_due(factory, ledger, svc_settings) == 0  # window still open
    later = utcnow() + timedelta(seconds=svc_settings.challenge_window_seconds + 1)
    assert finalizer.finalize_due(factory, ledger, svc_settings, now=later) == 1
    assert job(factory, job_id).state == "SETTLED"
    with session_scope(factory) as session:
        prov = session.get(Provider, provider_id)
        assert prov is not None and prov.completed_jobs == 1 and prov.active_jobs == 0
        assert prov.earned_micros == committed.amount_micros - committed.fee_micros
    assert [c[0] for c in ledger.calls] == ["fund", "commit", "finalize"]


def test_silent_provider_loses_the_job_then_it_fails_after_max_attempts(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id, first_provider = _assigned(factory, svc_settings, ledger)
    later = utcnow() + timedelta(seconds=svc_settings.assignment_ack_seconds + 1)
    assert lease_expiry.requeue_expired_leases(factory, svc_settings, ledger, now=later) == 1
    requeued = job(factory, job_id)
    assert requeued.state == "QUEUED" and requeued.excluded_provider_ids == [first_provider]
    # the same provider is not matched again; a second one is
    second = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="B"), {"RTX4090": "1.5"})
    )
    assert matcher.match_queued(factory, svc_settings) == [second.account_id]
    later = utcnow() + timedelta(seconds=svc_settings.assignment_ack_seconds + 1)
    lease_expiry.requeue_expired_leases(factory, svc_settings, ledger, now=later)
    failed = job(factory, job_id)
    assert failed.state == "FAILED" and "gave up after 2 attempts" in (failed.failure_reason or "")
    assert ledger.calls[-1] == ("refund", job_id)
    with session_scope(factory) as session:
        prov = session.get(Provider, first_provider)
        assert prov is not None and prov.timed_out_jobs == 1 and prov.reputation < 0.5


def test_queue_deadline_expires_with_refund(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id = submit(
        factory, add_developer(factory), gpu_spec(queue_timeout_seconds=30), svc_settings, ledger
    )
    assert queue_deadline.expire_queued(factory, svc_settings, ledger) == 0
    later = utcnow() + timedelta(seconds=31)
    assert queue_deadline.expire_queued(factory, svc_settings, ledger, now=later) == 1
    assert job(factory, job_id).state == "EXPIRED"
    assert ledger.calls[-1] == ("refund", job_id)


def test_cancel_running_job_bills_used_seconds_and_tells_the_provider(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id, provider_id = _assigned(factory, svc_settings, ledger)
    principal = Principal(Role.PROVIDER, provider_id)
    with session_scope(factory) as session:
        providers.mark_started(session, principal, job_id, svc_settings)
    owner = job(factory, job_id).owner_id
    with session_scope(factory) as session:
        dev = Principal(Role.DEVELOPER, owner)
        jobs.cancel(session, dev, job_id, ledger, svc_settings)
    cancelled = job(factory, job_id)
    assert cancelled.state == "CANCELLED" and cancelled.amount_micros is not None
    assert cancelled.fee_micros is not None
    with session_scope(factory) as session:  # off-chain, the seconds used are paid at once
        paid = session.get(Provider, provider_id)
        assert paid is not None
        assert paid.earned_micros == cancelled.amount_micros - cancelled.fee_micros
    with session_scope(factory) as session:
        ack = providers.heartbeat(
            session,
            principal,
            heartbeat(gpus(RTX4090, 2), {"RTX4090": "1.2"}, running=[job_id]),
            svc_settings,
        ).ack
    assert ack.cancel_jobs == [job_id]
    refunds = ledger.calls.count(("refund", job_id))
    with session_scope(factory) as session:
        jobs.cancel(session, dev, job_id, ledger, svc_settings)  # a retried cancel: no-op
    assert ledger.calls.count(("refund", job_id)) == refunds


def _committed(
    factory: sessionmaker[Session], settings: CoordinatorSettings, ledger: RecordingSettlement
) -> tuple[str, Principal, Principal]:
    job_id, provider_id = _assigned(factory, settings, ledger)
    prov = Principal(Role.PROVIDER, provider_id)
    results.report_result(
        factory, ledger, prov, job_id, ResultReport(exit_code=0, usage_seconds=1), settings
    )
    dev = Principal(Role.DEVELOPER, job(factory, job_id).owner_id)
    return job_id, prov, dev


@pytest.mark.parametrize("provider_at_fault", [True, False])
def test_dispute_resolved_both_ways(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
    provider_at_fault: bool,
) -> None:
    job_id, prov, dev = _committed(factory, svc_settings, ledger)
    disputes.challenge(factory, ledger, dev, job_id, "wrong numbers", None)
    assert job(factory, job_id).state == "DISPUTED"
    later = utcnow() + timedelta(seconds=svc_settings.challenge_window_seconds + 1)
    assert finalizer.finalize_due(factory, ledger, svc_settings, now=later) == 0
    disputes.resolve(factory, ledger, job_id, provider_at_fault, "re-run compared")
    final = job(factory, job_id)
    with session_scope(factory) as session:
        provider = session.get(Provider, prov.account_id)
        assert provider is not None
        if provider_at_fault:
            assert final.state == "REFUNDED" and provider.disputes_lost == 1
            assert provider.earned_micros == 0 and ledger.calls[-1] == ("resolve", job_id)
        else:
            assert final.state == "SETTLED" and provider.disputes_lost == 0
            assert provider.earned_micros == (final.amount_micros or 0) - (final.fee_micros or 0)


def test_challenge_after_the_window_is_refused(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    closed = svc_settings.model_copy(update={"challenge_window_seconds": 0})
    job_id, _, dev = _committed(factory, closed, ledger)
    with pytest.raises(InvalidTransition, match="closed"):
        disputes.challenge(factory, ledger, dev, job_id, "too late", None)


def test_failure_reports_requeue_or_fail(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id, provider_id = _assigned(factory, svc_settings, ledger)
    prov = Principal(Role.PROVIDER, provider_id)
    with session_scope(factory) as session:
        providers.report_failure(
            session,
            prov,
            job_id,
            FailureReport(reason="GPU fell off the bus", retryable=True),
            ledger,
            svc_settings,
        )
    assert job(factory, job_id).state == "QUEUED"
    other_job, other_provider = _assigned(factory, svc_settings, ledger)
    with session_scope(factory) as session:
        providers.report_failure(
            session,
            Principal(Role.PROVIDER, other_provider),
            other_job,
            FailureReport(reason="image not allowed here"),
            ledger,
            svc_settings,
        )
    failed = job(factory, other_job)
    assert failed.state == "FAILED" and "image not allowed" in (failed.failure_reason or "")


def test_a_busy_provider_is_not_barred_from_the_job(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    job_id, provider_id = _assigned(factory, svc_settings, ledger)
    with session_scope(factory) as session:
        providers.report_failure(
            session,
            Principal(Role.PROVIDER, provider_id),
            job_id,
            FailureReport(reason="provider is at capacity", retryable=True, busy=True),
            ledger,
            svc_settings,
        )
    bounced = job(factory, job_id)
    assert bounced.state == "QUEUED" and bounced.excluded_provider_ids == []
    assert bounced.attempts == 0  # the attempt it never started does not count
    assert bounced.next_match_at is not None
    with session_scope(factory) as session:
        said = [e.reason for e in jobs.history(session, bounced)]
        assert said[-1] == "provider busy: provider is at capacity; back in the queue"
        prov = session.get(Provider, provider_id)
        assert prov is not None and prov.failed_jobs == 0 and prov.active_jobs == 0
    assert matcher.match_queued(factory, svc_settings, now=bounced.next_match_at) == [provider_id]


def test_a_job_only_its_failing_provider_can_run_fails_with_a_refund(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    settings = svc_settings.model_copy(update={"excluded_retry_seconds": 5, "max_attempts": 2})
    job_id, provider_id = _assigned(factory, settings, ledger)
    fault = FailureReport(reason="docker refused the container", retryable=True)
    prov = Principal(Role.PROVIDER, provider_id)
    with session_scope(factory) as session:
        providers.report_failure(session, prov, job_id, fault, ledger, settings)
    requeued = job(factory, job_id)
    assert requeued.state == "QUEUED" and requeued.excluded_provider_ids == [provider_id]
    assert matcher.match_queued(factory, settings) == []  # others first: there are none
    later = requeued.updated_at + timedelta(seconds=6)
    assert matcher.match_queued(factory, settings, now=later) == [provider_id]
    with session_scope(factory) as session:
        providers.report_failure(session, prov, job_id, fault, ledger, settings)
    failed = job(factory, job_id)
    assert failed.state == "FAILED" and "gave up after 2 attempts" in (failed.failure_reason or "")
    assert ledger.calls[-1] == ("refund", job_id)
