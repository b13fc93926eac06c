"""Liveness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gpumarket import __version__
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.deps import (
    ReadSessionDep,
    SettingsDep,
    bearer_scheme,
    get_principal,
    require_admin,
)
from gpumarket.coordinator.services import stats
from gpumarket.coordinator.services.settlement import SettlementBackend, SettlementHealth
from gpumarket.coordinator.settings import CoordinatorSettings

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(session: ReadSessionDep, request: Request) -> dict[str, str]:
    """OK when the database answers; also names the version and settlement backend."""
    stats.database_answers(session)
    return {"status": "ok", "version": __version__, "settlement": request.app.state.settlement.name}


class _StatsCollector:
    """Turns one stats snapshot (and, on-chain, the chain's health) into gauge families at
    scrape time."""

    def __init__(self, snapshot: stats.MarketStats, chain: SettlementHealth | None) -> None:
        self.snapshot = snapshot
        self.chain = chain

    def collect(self) -> Iterator[Metric]:
        families = stats.prometheus_families(self.snapshot)
        if self.chain is not None:
            families += stats.chain_families(self.chain)
        for name, doc, samples in families:
            labels = sorted(samples[0][0]) if samples and samples[0][0] else []
            family = GaugeMetricFamily(name, doc, labels=labels)
            for label_values, value in samples:
                family.add_metric([label_values[k] for k in labels], value)
            yield family


async def metrics_access(request: Request) -> None:
    """``/metrics`` repeats operator figures (revenue, fees, banned providers): it needs the
    admin token unless the operator publishes them (``GPUMARKET_PUBLIC_METRICS=true``)."""
    settings: CoordinatorSettings = request.app.state.settings
    if settings.public_metrics:
        return
    credentials = await bearer_scheme(request)
    principal = await get_principal(request, credentials)
    await require_admin(principal)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus exposition of the marketplace gauges (computed from the database) and, on
    an on-chain market, of the chain's health (RPC up, block, the coordinator's gas money,
    transactions awaiting receipts). Needs the admin token unless the operator made the
    figures public."""
    with session_scope(request.app.state.read_session_factory) as session:
        snapshot = stats.market_stats(session, settings)
    backend: SettlementBackend = request.app.state.settlement
    chain = backend.health()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(snapshot, chain))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
