"""Human sizes and dstack-style ranges: ``"24GB"``, ``"24GB.."``, ``"..80GB"``, ``"16GB..80GB"``.

Sizes are binary (1GB = 1024MB, as NVML and Docker count them) and stored as whole megabytes.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from gpumarket.protocol.base import MAX_SIZE_MB, WireModel

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|[KMGT])?\s*$", re.IGNORECASE)
_FACTORS_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_size_mb(text: str | int | float) -> int:
    """Parse ``"24GB"``, ``"512MB"``, ``"1.5TB"`` (or a bare number of GB) into megabytes."""
    if isinstance(text, bool):
        raise ValueError("a size must be a string such as '24GB'")
    if isinstance(text, int | float):
        if not 0 <= text <= MAX_SIZE_MB / 1024:
            raise ValueError(f"a size in GB must be between 0 and {MAX_SIZE_MB // 1024}")
        return int(text * 1024)
    match = _SIZE.match(text) if len(text) <= 32 else None
    if not match:
        raise ValueError(f"{text[:40]!r} is not a size; write it like '512MB', '24GB' or '1TB'")
    number = float(match.group(1))
    unit = (match.group(2) or "G")[0].upper()
    mb = number * _FACTORS_MB[unit]
    if mb > MAX_SIZE_MB:
        raise ValueError(f"{text!r} is more than any host has (at most {MAX_SIZE_MB // 1024**2}TB)")
    return round(mb)


def format_size_mb(mb: int) -> str:
    """Render megabytes the way users write them (``24GB`` when whole, else ``MB``)."""
    if mb % 1024 == 0:
        return f"{mb // 1024}GB"
    return f"{mb}MB"


class SizeRange(WireModel):
    """An inclusive range of sizes in MB; either end may be open.

    On input it also takes the string form: ``"24GB"`` means at least 24GB (the useful reading
    for VRAM, where a "24GB" card reports 23.99GiB), ``"24GB.."`` the same, ``"..80GB"`` at most
    80GB, ``"16GB..80GB"`` both.
    """

    min_mb: int | None = Field(default=None, ge=0, le=MAX_SIZE_MB)
    max_mb: int | None = Field(default=None, ge=0, le=MAX_SIZE_MB)

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"min_mb": parse_size_mb(value)}
        if not isinstance(value, str):
            return value
        text = value.strip()
        if ".." not in text:
            return {"min_mb": _tolerant(parse_size_mb(text))}
        low, _, high = text.partition("..")
        if ".." in high:
            raise ValueError(f"{value!r} has more than one '..'; write a range like '16GB..80GB'")
        if not low.strip() and not high.strip():
            raise ValueError("a range needs at least one end, like '24GB..' or '..80GB'")
        return {
            "min_mb": _tolerant(parse_size_mb(low)) if low.strip() else None,
            "max_mb": parse_size_mb(high) if high.strip() else None,
        }

    @model_validator(mode="after")
    def _check_order(self) -> SizeRange:
        for end in (self.min_mb, self.max_mb):
            if end is not None and end < 0:
                raise ValueError("a size cannot be negative")
        if self.min_mb is not None and self.max_mb is not None and self.min_mb > self.max_mb:
            raise ValueError(
                f"the range's lower end ({format_size_mb(self.min_mb)}) is above its upper end "
                f"({format_size_mb(self.max_mb)})"
            )
        return self

    def contains(self, mb: int) -> bool:
        """Whether a card or host with ``mb`` megabytes satisfies the range."""
        if self.min_mb is not None and mb < self.min_mb:
            return False
        return not (self.max_mb is not None and mb > self.max_mb)

    def __str__(self) -> str:
        low = format_size_mb(self.min_mb) if self.min_mb is not None else ""
        high = format_size_mb(self.max_mb) if self.max_mb is not None else ""
        return f"{low}..{high}"


def _tolerant(min_mb: int) -> int:
    """Marketing sizes vs NVML: a '24GB' card reports ~23.99GiB; accept 2.5% below the figure."""
    return int(min_mb * 0.975)
