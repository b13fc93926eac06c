"""The one way a background loop takes its work: claim due rows, apply, commit.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several coordinator replicas
running the same loop share the work without ever processing a row twice; on SQLite the single
writer lock does the same. Each claim is one short transaction: a loop never holds a row while
it waits on something outside the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope

Row = TypeVar("Row")


def claim(session: Session, query: Select[Row]) -> list[Row]:
    """The rows ``query`` selects, locked for this transaction; rows another replica holds
    are skipped, not waited for."""
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def claim_and_apply(
    factory: sessionmaker[Session],
    query: Select[Row],
    apply: Callable[[Session, Row], object],
) -> int:
    """Claim the due rows, apply ``apply`` to each and commit, in one transaction; how many
    rows it took."""
    with session_scope(factory) as session:
        rows = claim(session, query)
        for row in rows:
            apply(session, row)
        return len(rows)
