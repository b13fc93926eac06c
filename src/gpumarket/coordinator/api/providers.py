"""The open reputation: any provider's public profile, with no credential."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gpumarket.coordinator.deps import ReadSessionDep, SettingsDep
from gpumarket.coordinator.services import providers
from gpumarket.protocol import ProviderProfile

router = APIRouter(prefix="/v1/providers", tags=["providers"])


@router.get("/{provider_id}", response_model=ProviderProfile)
def provider_profile(
    provider_id: Annotated[str, Path(min_length=1, max_length=40)],
    session: ReadSessionDep,
    settings: SettingsDep,
) -> ProviderProfile:
    """A provider's public record: jobs completed, failed and timed out, re-runs passed and
    failed, disputes lost, slashes, uptime over 30 days, its score (None while it is a
    newcomer) and the sampling rate that score gives. No credential needed."""
    return providers.public_profile(session, provider_id, settings)
