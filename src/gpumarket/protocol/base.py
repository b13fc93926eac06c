"""Shared base classes and scalar types for the wire models.

Money travels as a decimal string with at most six decimals (the payment token has six), so no
side ever rounds a price through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MICROS = 1_000_000
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""The widest integer any column holds (BIGINT); narrower columns get their own bounds."""
INT32_MAX = 2**31 - 1
"""The widest value of an INTEGER column (PostgreSQL's int4)."""
MAX_SIZE_MB = 2**40
"""The largest memory or disk size anyone may state, in MB (an exabyte: no host has more)."""
MAX_CPUS = 1_000_000.0
"""The most CPU cores a host or a job may state."""
MAX_TFLOPS = 1_000_000.0
"""The highest TFLOPS figure a GPU, a host or a requirement may state (no chip is near it)."""
MAX_USAGE_SECONDS = 10.0 * 365 * 24 * 3600
"""The longest run time a result may claim (ten years; a job's own limit is far lower)."""


def check_storable(value: Any) -> Any:
    """Refuse what no database column can hold, wherever it sits in a field's value: a NUL
    character in text (PostgreSQL rejects it in every text type) and an integer outside
    BIGINT. Floats are kept finite by the models' ``allow_inf_nan=False``."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain a NUL character (\\u0000)")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"must be between {INT64_MIN} and {INT64_MAX}")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key)
            check_storable(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_storable(item)
    return value


class WireModel(BaseModel):
    """Base of every wire model: unknown keys are an error, so a typo never silently vanishes;
    text with a NUL, integers past BIGINT and non-finite numbers (``NaN``, ``Infinity``, a
    ``1e400`` that overflows) are refused in every field, since no column can hold them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_storable(value)


class ResponseModel(BaseModel):
    """Base of models the coordinator sends: lenient on input so older clients keep working."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)


Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
"""A non-negative token amount with at most six decimals (for instance USD per GPU-hour)."""

MAX_PRICE_PER_HOUR = 1_000_000
"""The highest price per GPU-hour (or CPU-hour) anyone may ask or bid: far above any real
price, and low enough that the largest escrow (price x 64 GPUs x a week) fits in BIGINT."""

Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE_PER_HOUR, max_digits=13, decimal_places=6)]
"""A price per GPU-hour, bounded by :data:`MAX_PRICE_PER_HOUR`."""


def to_micros(amount: Decimal) -> int:
    """Convert a six-decimal amount to integer micro-units, the unit stored and sent on-chain."""
    return int((amount * MICROS).to_integral_value())


def from_micros(micros: int) -> Decimal:
    """Convert integer micro-units back to a six-decimal amount for display and the wire."""
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))
