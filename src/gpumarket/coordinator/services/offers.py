"""The public offer book: what providers online now offer, and at what price."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import OfferRow, Provider
from gpumarket.coordinator.services.matching import heartbeat_cutoff
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import Offer, from_micros, normalize_gpu_model


def offer_book(
    session: Session,
    settings: CoordinatorSettings,
    gpu_model: str | None,
    region: str | None,
    max_price_micros: int | None,
    limit: int,
    offset: int,
) -> list[Offer]:
    """Offers of online, unbanned providers, best price per TFLOPS first."""
    query = (
        select(OfferRow, Provider)
        .join(Provider, Provider.id == OfferRow.provider_id)
        .where(
            Provider.online.is_(True),
            Provider.banned.is_(False),
            Provider.last_heartbeat_at >= heartbeat_cutoff(utcnow(), settings),
        )
    )
    if gpu_model:
        model = gpu_model.upper() if gpu_model.upper() == "CPU" else normalize_gpu_model(gpu_model)
        query = query.where(OfferRow.gpu_model == model)
    if region:
        query = query.where(Provider.region == region)
    if max_price_micros is not None:
        query = query.where(OfferRow.price_micros <= max_price_micros)
    rows = session.execute(
        query.order_by(OfferRow.rank_price, OfferRow.id).limit(limit).offset(offset)
    )
    return [
        Offer(
            provider_id=offer.provider_id,
            gpu_model=offer.gpu_model,
            vram_mb=offer.vram_mb,
            tflops=offer.tflops,
            total_count=offer.total_count,
            free_count=offer.total_count - offer.reserved_count,
            price_per_hour=from_micros(offer.price_micros),
            region=provider.region,
            reputation=provider.reputation,
            score=provider.score,
        )
        for offer, provider in rows
    ]
