"""Marketplace statistics for operators and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import Job, OfferRow, Provider
from gpumarket.coordinator.services.matching import heartbeat_cutoff
from gpumarket.coordinator.services.settlement import SettlementHealth
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import CPU_OFFER, ChainState, JobState
from gpumarket.protocol import MarketStats as MarketStats  # the wire model; /metrics uses it

S = JobState

PAID = or_(
    Job.chain_state == ChainState.SETTLED.value,  # on-chain: the contract's Settled event paid it
    and_(
        Job.chain_state.is_(None),  # off-chain: a settled result, or a run's cancelled seconds
        Job.state.in_([S.SETTLED.value, S.CANCELLED.value]),
    ),
)
"""Jobs whose payment was made (the provider paid, the fee taken)."""

AWAITING_PAYMENT = or_(
    Job.chain_state.in_([ChainState.COMMITTED.value, ChainState.DISPUTED.value]),
    and_(Job.chain_state.is_(None), Job.state.in_([S.COMMITTED.value, S.DISPUTED.value])),
)
"""Jobs whose result is claimed but not paid yet (in the challenge window, or disputed)."""

JOB_CPUS = Job.spec[("resources", "cpu")].as_float()
"""The CPUs a job asked for, read from its stored spec."""


def _overlap_seconds(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


def online_clause(now: datetime, settings: CoordinatorSettings) -> ColumnElement[bool]:
    """Providers that can take work now: a fresh heartbeat, not banned, not draining."""
    return and_(
        Provider.online.is_(True),
        Provider.last_heartbeat_at >= heartbeat_cutoff(now, settings),
        Provider.banned.is_(False),
        Provider.accepting.is_(True),
    )


def market_stats(
    session: Session, settings: CoordinatorSettings, now: datetime | None = None
) -> MarketStats:
    """Compute the snapshot; the hours used count every job's run time inside the window
    (GPU jobs in GPU-hours, CPU-only jobs in CPU-hours)."""
    now = now or utcnow()
    window = settings.utilization_window_seconds
    lo = now - timedelta(seconds=window)
    by_state = {s.value: 0 for s in JobState}
    for state, count in session.execute(select(Job.state, func.count()).group_by(Job.state)):
        by_state[state] = count
    online = online_clause(now, settings)
    providers_total = session.scalar(select(func.count()).select_from(Provider)) or 0
    providers_online = session.scalar(select(func.count()).where(online)) or 0
    providers_banned = (
        session.scalar(select(func.count()).select_from(Provider).where(Provider.banned.is_(True)))
        or 0
    )
    gpu_row = session.execute(
        select(
            func.coalesce(func.sum(OfferRow.total_count), 0),
            func.coalesce(func.sum(OfferRow.reserved_count), 0),
        )
        .join(Provider, Provider.id == OfferRow.provider_id)
        .where(online, OfferRow.gpu_model != CPU_OFFER)
    ).one()
    gpus_online, gpus_busy = int(gpu_row[0]), int(gpu_row[1])
    cpu_row = session.execute(
        select(
            func.coalesce(func.sum(Provider.cpu_total), 0),
            func.coalesce(func.sum(Provider.cpu_reserved), 0),
        )
        .join(OfferRow, OfferRow.provider_id == Provider.id)
        .where(online, OfferRow.gpu_model == CPU_OFFER)
    ).one()
    cpus_online, cpus_busy = float(cpu_row[0]), float(cpu_row[1])
    gpu_seconds = cpu_seconds = 0.0
    for started, finished, count, cpus in session.execute(
        select(Job.started_at, Job.finished_at, Job.gpu_count, JOB_CPUS).where(
            Job.started_at.is_not(None),
            or_(Job.finished_at.is_(None), Job.finished_at > lo),
        )
    ):
        if started is None:
            continue
        ran = _overlap_seconds(started, finished or now, lo, now)
        if count > 0:
            gpu_seconds += count * ran
        else:
            cpu_seconds += float(cpus or 0) * ran
    gpu_available = gpus_online * window / 3600
    cpu_available = cpus_online * window / 3600
    gpu_used, cpu_used = gpu_seconds / 3600, cpu_seconds / 3600
    paid, fees = session.execute(
        select(
            func.coalesce(func.sum(Job.amount_micros), 0),
            func.coalesce(func.sum(Job.fee_micros), 0),
        ).where(PAID, Job.amount_micros > 0)
    ).one()
    pending = session.scalar(
        select(func.coalesce(func.sum(Job.amount_micros), 0)).where(AWAITING_PAYMENT)
    )
    return MarketStats(
        jobs_by_state=by_state,
        providers_total=providers_total,
        providers_online=providers_online,
        providers_banned=providers_banned,
        gpus_online=gpus_online,
        gpus_busy=gpus_busy,
        cpus_online=round(cpus_online, 3),
        cpus_busy=round(cpus_busy, 3),
        window_seconds=window,
        gpu_hours_used=round(gpu_used, 6),
        gpu_hours_available=round(gpu_available, 6),
        utilization=round(gpu_used / gpu_available, 6) if gpu_available else 0.0,
        cpu_hours_used=round(cpu_used, 6),
        cpu_hours_available=round(cpu_available, 6),
        cpu_utilization=round(cpu_used / cpu_available, 6) if cpu_available else 0.0,
        revenue_micros=int(paid or 0),
        fees_micros=int(fees or 0),
        pending_micros=int(pending or 0),
    )


def prometheus_families(
    stats: MarketStats,
) -> list[tuple[str, str, list[tuple[dict[str, str], float]]]]:
    """(name, help, samples) for each gauge, built from one stats snapshot."""
    jobs: list[tuple[dict[str, str], float]] = [
        ({"state": s}, float(c)) for s, c in stats.jobs_by_state.items()
    ]
    single: list[tuple[str, str, float]] = [
        ("gpumarket_providers", "Registered providers", stats.providers_total),
        (
            "gpumarket_providers_online",
            "Providers with a fresh heartbeat, neither banned nor draining",
            stats.providers_online,
        ),
        ("gpumarket_providers_banned", "Banned providers", stats.providers_banned),
        ("gpumarket_gpus_online", "GPUs offered by online providers", stats.gpus_online),
        ("gpumarket_gpus_busy", "GPUs reserved by assigned or running jobs", stats.gpus_busy),
        (
            "gpumarket_gpu_utilization",
            "GPU-hours used / available over the window",
            stats.utilization,
        ),
        (
            "gpumarket_cpus_online",
            "CPUs of online providers offering CPU-only work",
            stats.cpus_online,
        ),
        ("gpumarket_cpus_busy", "CPUs reserved on those providers", stats.cpus_busy),
        (
            "gpumarket_cpu_utilization",
            "CPU-hours of CPU-only jobs / CPU-hours available over the window",
            stats.cpu_utilization,
        ),
        (
            "gpumarket_revenue_micros",
            "Payments made for jobs, fee included, whatever the job's final state (micro-units)",
            stats.revenue_micros,
        ),
        (
            "gpumarket_fees_micros",
            "Protocol fees of those payments (micro-units)",
            stats.fees_micros,
        ),
        (
            "gpumarket_pending_micros",
            "Claimed by results, not paid yet: in the challenge window or disputed (micro-units)",
            stats.pending_micros,
        ),
    ]
    families: list[tuple[str, str, list[tuple[dict[str, str], float]]]] = [
        ("gpumarket_jobs", "Jobs by lifecycle state", jobs)
    ]
    families += [(name, doc, [({}, float(value))]) for name, doc, value in single]
    return families


def chain_families(
    health: SettlementHealth,
) -> list[tuple[str, str, list[tuple[dict[str, str], float]]]]:
    """The chain's gauges: an alert on ``gpumarket_chain_up == 0``, on a low
    ``gpumarket_chain_sender_balance_eth`` (no gas: no open, commit or payout goes out) or on
    a growing ``gpumarket_chain_outbox_pending`` catches what stops payments."""
    families: list[tuple[str, str, list[tuple[dict[str, str], float]]]] = [
        ("gpumarket_chain_up", "1 when the chain's RPC endpoint answers", [({}, float(health.up))]),
        (
            "gpumarket_chain_outbox_pending",
            "Coordinator transactions sent and awaiting a receipt",
            [({}, float(health.outbox_pending))],
        ),
    ]
    if health.block is not None:
        families.append(
            ("gpumarket_chain_block", "Latest block of the chain", [({}, float(health.block))])
        )
    if health.sender_balance_wei is not None:
        families.append(
            (
                "gpumarket_chain_sender_balance_eth",
                "Gas money left on the coordinator's account (ETH)",
                [({}, health.sender_balance_wei / 10**18)],
            )
        )
    return families


def database_answers(session: Session) -> None:
    """Ask the database the cheapest question (``/healthz``): raises when it does not answer."""
    session.execute(text("SELECT 1"))
