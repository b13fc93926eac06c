"""Operator endpoints (admin token): providers, bans, any job, disputes, marketplace stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import select

from gpumarket.coordinator.api.params import AccountFilter, Cursor, Offset
from gpumarket.coordinator.db.models import Provider
from gpumarket.coordinator.deps import (
    AdminDep,
    ChainDep,
    FactoryDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    SettlementDep,
)
from gpumarket.coordinator.services import jobs, lifecycle, onchain, providers, stats
from gpumarket.coordinator.services.chain import ChainSettlement
from gpumarket.protocol import ChainInfo, JobPage, JobState, JobView, ProviderView
from gpumarket.protocol.base import ResponseModel, WireModel

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class BanBody(WireModel):
    """Why the provider is banned (shown to it and kept for the record)."""

    reason: str = Field(min_length=1, max_length=1000)


class ResolveBody(WireModel):
    """The arbiter's decision on a disputed job."""

    provider_at_fault: bool
    note: str = Field(default="", max_length=2000)


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
    query = select(Provider)
    if online is not None:
        query = query.where(Provider.online.is_(online))
    if banned is not None:
        query = query.where(Provider.banned.is_(banned))
    rows = session.scalars(
        query.order_by(Provider.last_heartbeat_at.desc().nulls_last(), Provider.id)
        .limit(limit)
        .offset(offset)
    )
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
    session: SessionDep,
    settlement: SettlementDep,
    factory: FactoryDep,
) -> JobView:
    """Decide a dispute: provider at fault -> REFUNDED (stake slashed on-chain), else SETTLED."""
    if isinstance(settlement, ChainSettlement):
        chain_job = onchain.resolve(factory, settlement, job_id, body.provider_at_fault, body.note)
        return jobs.to_view(chain_job)
    job = lifecycle.load_job_for_update(session, job_id)
    lifecycle.resolve(session, job, body.provider_at_fault, body.note, settlement)
    return jobs.to_view(job)


@router.get("/stats", response_model=stats.MarketStats)
def market_stats(_: AdminDep, session: ReadSessionDep, settings: SettingsDep) -> stats.MarketStats:
    """Jobs by state, GPUs online and busy, utilization over the window, revenue and fees."""
    return stats.market_stats(session, settings)


class FeeBody(WireModel):
    """The protocol fee for jobs opened from now on (running jobs keep their terms)."""

    fee_bps: int = Field(ge=0, le=1000, description="basis points of each payment, at most 10%")
    burn_bps: int | None = Field(
        default=None, ge=0, le=10_000, description="share of the fee burned (unchanged if absent)"
    )


class PauseBody(WireModel):
    """Pause (no new jobs open; withdrawals still work) or resume the market."""

    paused: bool


class ChainChange(ResponseModel):
    """An operator's change to the market contract."""

    tx_hash: str
    chain: ChainInfo
    paused: bool


@router.post("/fee", response_model=ChainChange)
def set_fee(body: FeeBody, _: AdminDep, chain: ChainDep) -> ChainChange:
    """Change the fee (and burn share) the contract snapshots into each new job."""
    tx = chain.set_fee(body.fee_bps, body.burn_bps)
    return ChainChange(tx_hash=tx, chain=chain.info(), paused=chain.is_paused())


@router.post("/pause", response_model=ChainChange)
def set_paused(body: PauseBody, _: AdminDep, chain: ChainDep) -> ChainChange:
    """Pause or resume opening jobs on the market contract."""
    tx = chain.set_paused(body.paused)
    return ChainChange(tx_hash=tx, chain=chain.info(), paused=body.paused)
