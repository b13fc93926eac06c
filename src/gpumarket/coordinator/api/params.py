"""Query parameters shared by several routes, each bounded to what the database can hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Query

MAX_OFFSET = 1_000_000_000
"""Past this an offset or a log position is surely a mistake (and beyond int4 on PostgreSQL)."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
PricePerHour = Annotated[
    Decimal | None,
    Query(ge=0, le=1_000_000, max_digits=13, decimal_places=6, description="per GPU-hour"),
]
NameFilter = Annotated[
    str | None, Query(max_length=64, pattern=r"^[\w .:+-]*$", description="exact match")
]
AccountFilter = Annotated[
    str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]+$", description="an account id")
]
Cursor = Annotated[
    str | None,
    Query(max_length=200, pattern=r"^[A-Za-z0-9_=-]+$", description="a next_cursor, unchanged"),
]
