"""Providers go offline without heartbeats; statistics count GPU-hours inside the window."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import liveness, matcher
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.coordinator.services import stats
from gpumarket.coordinator.settings import CoordinatorSettings
from tests.helpers import RTX4090, gpu_spec, gpus, heartbeat
from tests.unit.coordinator.conftest import (
    RecordingSettlement,
    add_developer,
    add_provider,
    submit,
)


def test_silent_providers_go_offline_and_stop_matching(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    provider = add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}))
    assert liveness.mark_offline(factory, svc_settings) == 0
    later = utcnow() + timedelta(seconds=svc_settings.provider_offline_after_seconds + 1)
    assert liveness.mark_offline(factory, svc_settings, now=later) == 1
    with session_scope(factory) as session:
        row = session.get(Provider, provider.account_id)
        assert row is not None and row.online is False
    submit(factory, add_developer(factory), gpu_spec(), svc_settings, ledger)
    assert matcher.match_queued(factory, svc_settings) == []


def test_utilization_counts_gpu_seconds_inside_the_window(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 4), {"RTX4090": "1"}))
    job_id = submit(
        factory, add_developer(factory), gpu_spec(gpu="RTX4090:2"), svc_settings, ledger
    )
    now = utcnow()
    window = svc_settings.utilization_window_seconds
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        # ran 2 GPUs for 30 minutes, starting before the window opened: only the part inside
        # the window counts
        job.started_at = now - timedelta(seconds=window + 600)
        job.finished_at = now - timedelta(seconds=window - 1200)
        job.state = "COMMITTED"
        job.amount_micros, job.fee_micros = 1_000_000, 25_000
    with session_scope(factory) as session:
        snapshot = stats.market_stats(session, svc_settings, now=now)
    assert snapshot.gpus_online == 4
    assert abs(snapshot.gpu_hours_used - 2 * 1200 / 3600) < 1e-3
    assert abs(snapshot.gpu_hours_available - 4 * window / 3600) < 1e-6
    assert abs(snapshot.utilization - snapshot.gpu_hours_used / snapshot.gpu_hours_available) < 1e-6
    assert snapshot.pending_micros == 1_000_000 and snapshot.revenue_micros == 0
    assert snapshot.jobs_by_state["COMMITTED"] == 1
