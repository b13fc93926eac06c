"""Shared base classes and scalar types for the wire models.

Money travels as a decimal string with at most six decimals (the payment token has six), so no
side ever rounds a price through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MICROS = 1_000_000


class WireModel(BaseModel):
    """Base of every wire model: unknown keys are an error, so a typo never silently vanishes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResponseModel(BaseModel):
    """Base of models the coordinator sends: lenient on input so older clients keep working."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)


Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
"""A non-negative token amount with at most six decimals (for instance USD per GPU-hour)."""


def to_micros(amount: Decimal) -> int:
    """Convert a six-decimal amount to integer micro-units, the unit stored and sent on-chain."""
    return int((amount * MICROS).to_integral_value())


def from_micros(micros: int) -> Decimal:
    """Convert integer micro-units back to a six-decimal amount for display and the wire."""
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))
