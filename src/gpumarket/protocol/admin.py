"""Wire models of the operator's endpoints (``/v1/admin``): bans, rulings on disputes, and
changes to the market contract's terms.

The coordinator's admin router and the SDK's ``AdminClient`` both use these, so the operator's
tools and the API cannot drift apart on a field name.
"""

from __future__ import annotations

from pydantic import Field

from gpumarket.protocol.base import ResponseModel, WireModel
from gpumarket.protocol.settlement import ChainInfo


class BanBody(WireModel):
    """Why the provider is banned (shown to it and kept for the record)."""

    reason: str = Field(min_length=1, max_length=1000)


class ResolveBody(WireModel):
    """The arbiter's decision on a disputed job."""

    provider_at_fault: bool
    note: str = Field(default="", max_length=2000)


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
