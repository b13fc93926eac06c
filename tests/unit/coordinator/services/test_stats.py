"""Market figures: revenue counts every payment whatever the job's final state, "online" means
fresh, not banned and not draining, CPU offers have their own hours; and the chain's gauges: an
endpoint that does not answer reads as down, with no stale figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db import migrate
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import make_engine, make_session_factory, session_scope
from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services import stats
from gpumarket.coordinator.services.settlement import SettlementHealth
from gpumarket.coordinator.services.stats import chain_families
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobState
from tests.conftest import sqlite_url
from tests.helpers import RTX4090, cpu_spec, gpus, heartbeat
from tests.integration.conftest import fresh_postgres_database
from tests.unit.coordinator.conftest import (
    RecordingSettlement,
    add_developer,
    add_provider,
    submit,
)


def values(health: SettlementHealth) -> dict[str, float]:
    return {name: samples[0][1] for name, _, samples in chain_families(health)}


def test_an_answering_chain_reports_block_and_gas_money() -> None:
    up = SettlementHealth(up=True, block=42, sender_balance_wei=25 * 10**17, outbox_pending=3)
    assert values(up) == {
        "gpumarket_chain_up": 1.0,
        "gpumarket_chain_outbox_pending": 3.0,
        "gpumarket_chain_block": 42.0,
        "gpumarket_chain_sender_balance_eth": 2.5,
    }


def test_a_silent_chain_is_down_and_reports_no_block_or_balance() -> None:
    down = SettlementHealth(up=False, block=None, sender_balance_wei=None, outbox_pending=1)
    assert values(down) == {"gpumarket_chain_up": 0.0, "gpumarket_chain_outbox_pending": 1.0}


# ------------------------------------------------------------------ market figures


@pytest.fixture(params=["sqlite", "postgres"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The figures are SQL (a JSON path into the spec among them): both databases."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else fresh_postgres_database()
    migrate.upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def settle_as(
    factory: sessionmaker[Session],
    job_id: str,
    state: JobState,
    chain_state: str | None,
    amount: int,
    fee: int,
) -> None:
    """Put a job in its final (or waiting) money state, as the lifecycle leaves it."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state, job.chain_state = state.value, chain_state
        job.amount_micros, job.fee_micros = amount, fee


def test_revenue_counts_every_payment_whatever_the_jobs_final_state(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    owner = add_developer(factory)
    cases = [
        # paid: a settled result, a run cancelled midway (off-chain and on-chain, its claim
        # paid by the contract), a dispute ruled for the provider on-chain
        (JobState.SETTLED, None, 1_000_000, 25_000),
        (JobState.CANCELLED, None, 300_000, 7_500),
        (JobState.CANCELLED, "settled", 400_000, 10_000),
        (JobState.SETTLED, "settled", 200_000, 5_000),
        # not paid: refunded (ruled against the provider), a cancelled run whose provider never
        # claimed its seconds (the escrow went back)
        (JobState.REFUNDED, None, 900_000, 22_500),
        (JobState.REFUNDED, "refunded", 800_000, 20_000),
        (JobState.CANCELLED, "cancelled", 700_000, 17_500),
        # claimed, not paid yet: pending
        (JobState.COMMITTED, None, 50_000, 1_250),
        (JobState.DISPUTED, "disputed", 60_000, 1_500),
        (JobState.CANCELLED, "committed", 70_000, 1_750),
    ]
    for state, chain_state, amount, fee in cases:
        job_id = submit(factory, owner, cpu_spec(), svc_settings, ledger)
        settle_as(factory, job_id, state, chain_state, amount, fee)

    with session_scope(factory) as session:
        snapshot = stats.market_stats(session, svc_settings)

    assert snapshot.revenue_micros == 1_000_000 + 300_000 + 400_000 + 200_000
    assert snapshot.fees_micros == 25_000 + 7_500 + 10_000 + 5_000
    assert snapshot.pending_micros == 50_000 + 60_000 + 70_000
    gauges = {name: samples[0][1] for name, _, samples in stats.prometheus_families(snapshot)}
    assert gauges["gpumarket_revenue_micros"] == 1_900_000
    assert gauges["gpumarket_fees_micros"] == 47_500


def test_online_means_fresh_not_banned_and_not_draining(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    beat = heartbeat(gpus(RTX4090, 2), {"RTX4090": "1", "CPU": "0.1"}, cpu=8)
    add_provider(factory, svc_settings, beat)
    add_provider(factory, svc_settings, beat, banned=True)
    add_provider(factory, svc_settings, beat, accepting=False)  # draining: takes no new work
    stale = utcnow() - timedelta(seconds=svc_settings.provider_offline_after_seconds + 5)
    add_provider(factory, svc_settings, beat, last_heartbeat_at=stale)

    with session_scope(factory) as session:
        snapshot = stats.market_stats(session, svc_settings)

    assert snapshot.providers_total == 4 and snapshot.providers_banned == 1
    assert snapshot.providers_online == 1
    assert snapshot.gpus_online == 2 and snapshot.cpus_online == 8


def test_a_cpu_only_market_reports_its_cpu_hours(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    add_provider(factory, svc_settings, heartbeat(None, {"CPU": "0.1"}, cpu=4))
    add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}, cpu=32))
    job_id = submit(
        factory, add_developer(factory), cpu_spec(resources={"cpu": 2}), svc_settings, ledger
    )
    now = utcnow()
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state = JobState.RUNNING.value
        job.started_at = now - timedelta(minutes=30)  # 2 CPUs for half an hour: 1 CPU-hour

    with session_scope(factory) as session:
        snapshot = stats.market_stats(session, svc_settings, now=now)

    window_hours = svc_settings.utilization_window_seconds / 3600
    assert snapshot.cpus_online == 4  # the GPU provider offers no CPU-only work
    assert snapshot.cpu_hours_used == 1.0
    assert snapshot.cpu_hours_available == 4 * window_hours
    assert snapshot.cpu_utilization == round(1.0 / (4 * window_hours), 6)
    assert snapshot.gpu_hours_used == 0.0  # a CPU job spends no GPU-hours
    gauges = {name: samples[0][1] for name, _, samples in stats.prometheus_families(snapshot)}
    assert gauges["gpumarket_cpus_online"] == 4
    assert gauges["gpumarket_cpu_utilization"] == snapshot.cpu_utilization
