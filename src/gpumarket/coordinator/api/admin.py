"""Operator endpoints (admin token): providers, bans, any job, disputes, marketplace stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpumarket.coordinator.api.params import AccountFilter, Cursor, Offset
from gpumarket.coordinator.deps import (
    AdminDep,
    FactoryDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    SettlementDep,
)
from gpumarket.coordinator.services import disputes, jobs, providers, stats
from gpumarket.protocol import (
    BanBody,
    ChainChange,
    FeeBody,
    JobPage,
    JobState,
    JobView,
    MarketStats,
    PauseBody,
    ProviderView,
    ResolveBody,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/providers", response_model=list[ProviderView])
def list_providers(
    _: AdminDep,
    session: ReadSessionDep,
    online: bool | None = None,
    banned: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[ProviderView]:
    """Providers, most recently seen first."""
    rows = providers.list_providers(session, online, banned, limit, offset)
    return [providers.provider_view(r) for r in rows]


@router.get("/providers/{provider_id}", response_model=ProviderView)
def show_provider(provider_id: str, _: AdminDep, session: ReadSessionDep) -> ProviderView:
    """One provider in full."""
    return providers.provider_view(providers.get_provider(session, provider_id))


@router.post("/providers/{provider_id}/ban", response_model=ProviderView)
def ban_provider(provider_id: str, body: BanBody, _: AdminDep, session: SessionDep) -> ProviderView:
    """Stop matching jobs to a provider (jobs it already runs may finish)."""
    return providers.provider_view(providers.set_banned(session, provider_id, True, body.reason))


@router.post("/providers/{provider_id}/unban", response_model=ProviderView)
def unban_provider(provider_id: str, _: AdminDep, session: SessionDep) -> ProviderView:
    """Let a banned provider take jobs again."""
    return providers.provider_view(providers.set_banned(session, provider_id, False, None))


@router.get("/jobs", response_model=JobPage)
def list_all_jobs(
    principal: AdminDep,
    session: ReadSessionDep,
    state: Annotated[list[JobState] | None, Query()] = None,
    owner: AccountFilter = None,
    provider: AccountFilter = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> JobPage:
    """Every job, filtered by state, owner or provider."""
    rows, next_cursor = jobs.list_jobs(
        session, principal, state or [], limit, cursor, owner_id=owner, provider_id=provider
    )
    return JobPage(items=[jobs.to_view(j) for j in rows], next_cursor=next_cursor)


@router.get("/disputes", response_model=list[JobView])
def list_disputes(
    _: AdminDep,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[JobView]:
    """Jobs waiting for a ruling, oldest first (a challenged claim of a cancelled run too)."""
    return [jobs.to_view(j) for j in jobs.awaiting_ruling(session, limit)]


@router.post("/jobs/{job_id}/cancel", response_model=JobView)
def cancel_any_job(
    job_id: str,
    principal: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    settlement: SettlementDep,
) -> JobView:
    """Cancel any unfinished job."""
    return jobs.to_view(jobs.cancel(session, principal, job_id, settlement, settings))


@router.post("/jobs/{job_id}/resolve", response_model=JobView)
def resolve_dispute(
    job_id: str,
    body: ResolveBody,
    _: AdminDep,
    settlement: SettlementDep,
    factory: FactoryDep,
) -> JobView:
    """Decide a dispute: provider at fault -> REFUNDED (stake slashed on-chain), else SETTLED."""
    job = disputes.resolve(factory, settlement, job_id, body.provider_at_fault, body.note)
    return jobs.to_view(job)


@router.get("/stats", response_model=MarketStats)
def market_stats(_: AdminDep, session: ReadSessionDep, settings: SettingsDep) -> MarketStats:
    """Jobs by state, GPUs online and busy, utilization over the window, revenue and fees."""
    return stats.market_stats(session, settings)


@router.post("/fee", response_model=ChainChange)
def set_fee(body: FeeBody, _: AdminDep, chain: SettlementDep) -> ChainChange:
    """Change the fee (and burn share) the contract snapshots into each new job."""
    tx = chain.set_fee(body.fee_bps, body.burn_bps)
    return ChainChange(tx_hash=tx, chain=chain.info(), paused=chain.is_paused())


@router.post("/pause", response_model=ChainChange)
def set_paused(body: PauseBody, _: AdminDep, chain: SettlementDep) -> ChainChange:
    """Pause or resume opening jobs on the market contract."""
    tx = chain.set_paused(body.paused)
    return ChainChange(tx_hash=tx, chain=chain.info(), paused=body.paused)
