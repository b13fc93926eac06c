"""The public offer book and the matching dry run ("why no match")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpumarket.coordinator.api.params import NameFilter, Offset, PricePerHour
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.deps import ReadSessionDep, SettingsDep
from gpumarket.coordinator.services import matching, offers
from gpumarket.protocol import JobSpec, MatchExplanation, Offer, to_micros

router = APIRouter(prefix="/v1/offers", tags=["offers"])


@router.get("", response_model=list[Offer])
def list_offers(
    session: ReadSessionDep,
    settings: SettingsDep,
    gpu_model: NameFilter = None,
    region: NameFilter = None,
    max_price: PricePerHour = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[Offer]:
    """What online providers offer now, cheapest per TFLOPS first (no credential needed)."""
    return offers.offer_book(
        session,
        settings,
        gpu_model,
        region,
        to_micros(max_price) if max_price is not None else None,
        limit,
        offset,
    )


@router.post("/match", response_model=MatchExplanation)
def dry_run(spec: JobSpec, session: ReadSessionDep, settings: SettingsDep) -> MatchExplanation:
    """For a spec: the offers that would take it with their price, and for every provider
    that would not, each constraint it fails. Nothing is submitted."""
    return matching.explain(session, spec, utcnow(), settings)
