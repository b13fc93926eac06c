"""Alembic environment: online migrations only, serialised by an advisory lock on PostgreSQL so
several coordinator replicas starting at once do not race."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool, text

from gpumarket.coordinator.db import models  # noqa: F401  (registers the tables)
from gpumarket.coordinator.db.base import Base
from gpumarket.coordinator.db.engine import POSTGRES_CONNECT_ARGS, make_engine, require_utf8

MIGRATION_LOCK_ID = 7_411_902_311


def run_migrations_online() -> None:
    """Apply migrations over a live connection."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url) if url.startswith("sqlite") else None
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(url, poolclass=pool.NullPool, connect_args=POSTGRES_CONNECT_ARGS)
    with engine.connect() as connection:
        require_utf8(connection)
        is_postgres = connection.dialect.name == "postgresql"
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if is_postgres:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()
    engine.dispose()


run_migrations_online()
