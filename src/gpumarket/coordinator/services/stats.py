"""Marketplace statistics for operators and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import Job, OfferRow, Provider
from gpumarket.coordinator.services.chain import ChainHealth
from gpumarket.coordinator.services.matching import heartbeat_cutoff
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import CPU_OFFER, JobState


class MarketStats(BaseModel):
    """A snapshot of the marketplace (money in micro-units of the payment token)."""

    jobs_by_state: dict[str, int]
    providers_total: int
    providers_online: int
    providers_banned: int
    gpus_online: int
    gpus_busy: int
    window_seconds: int
    gpu_hours_used: float
    gpu_hours_available: float
    utilization: float
    revenue_micros: int
    fees_micros: int
    pending_micros: int


def _overlap_seconds(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


def market_stats(
    session: Session, settings: CoordinatorSettings, now: datetime | None = None
) -> MarketStats:
    """Compute the snapshot; GPU-hours used count every GPU job's run time inside the window."""
    now = now or utcnow()
    window = settings.utilization_window_seconds
    lo = now - timedelta(seconds=window)
    by_state = {s.value: 0 for s in JobState}
    for state, count in session.execute(select(Job.state, func.count()).group_by(Job.state)):
        by_state[state] = count
    cutoff = heartbeat_cutoff(now, settings)
    online_clause = (Provider.online.is_(True)) & (Provider.last_heartbeat_at >= cutoff)
    providers_total = session.scalar(select(func.count()).select_from(Provider)) or 0
    providers_online = session.scalar(select(func.count()).where(online_clause)) or 0
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
        .where(online_clause, OfferRow.gpu_model != CPU_OFFER)
    ).one()
    gpus_online, gpus_busy = int(gpu_row[0]), int(gpu_row[1])
    used_seconds = 0.0
    for started, finished, count in session.execute(
        select(Job.started_at, Job.finished_at, Job.gpu_count).where(
            Job.gpu_count > 0,
            Job.started_at.is_not(None),
            or_(Job.finished_at.is_(None), Job.finished_at > lo),
        )
    ):
        if started is not None:
            used_seconds += count * _overlap_seconds(started, finished or now, lo, now)
    available_hours = gpus_online * window / 3600
    used_hours = used_seconds / 3600
    money: dict[str, int] = {
        state: int(total or 0)
        for state, total in session.execute(
            select(Job.state, func.coalesce(func.sum(Job.amount_micros), 0))
            .where(
                Job.state.in_(
                    [JobState.SETTLED.value, JobState.COMMITTED.value, JobState.DISPUTED.value]
                )
            )
            .group_by(Job.state)
        )
    }
    fees = (
        session.scalar(
            select(func.coalesce(func.sum(Job.fee_micros), 0)).where(
                Job.state == JobState.SETTLED.value
            )
        )
        or 0
    )
    return MarketStats(
        jobs_by_state=by_state,
        providers_total=providers_total,
        providers_online=providers_online,
        providers_banned=providers_banned,
        gpus_online=gpus_online,
        gpus_busy=gpus_busy,
        window_seconds=window,
        gpu_hours_used=round(used_hours, 6),
        gpu_hours_available=round(available_hours, 6),
        utilization=round(used_hours / available_hours, 6) if available_hours else 0.0,
        revenue_micros=money.get(JobState.SETTLED.value, 0),
        fees_micros=int(fees),
        pending_micros=money.get(JobState.COMMITTED.value, 0)
        + money.get(JobState.DISPUTED.value, 0),
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
        ("gpumarket_providers_online", "Providers with a fresh heartbeat", stats.providers_online),
        ("gpumarket_providers_banned", "Banned providers", stats.providers_banned),
        ("gpumarket_gpus_online", "GPUs offered by online providers", stats.gpus_online),
        ("gpumarket_gpus_busy", "GPUs reserved by assigned or running jobs", stats.gpus_busy),
        (
            "gpumarket_gpu_utilization",
            "GPU-hours used / available over the window",
            stats.utilization,
        ),
        ("gpumarket_revenue_micros", "Settled job payments (micro-units)", stats.revenue_micros),
        ("gpumarket_fees_micros", "Protocol fees of settled jobs (micro-units)", stats.fees_micros),
        (
            "gpumarket_pending_micros",
            "Committed, not yet settled (micro-units)",
            stats.pending_micros,
        ),
    ]
    families: list[tuple[str, str, list[tuple[dict[str, str], float]]]] = [
        ("gpumarket_jobs", "Jobs by lifecycle state", jobs)
    ]
    families += [(name, doc, [({}, float(value))]) for name, doc, value in single]
    return families


def chain_families(
    health: ChainHealth,
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
