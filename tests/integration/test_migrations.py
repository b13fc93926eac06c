"""Alembic migrations on SQLite and PostgreSQL: upgrade, schema matches the models, downgrade."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from gpumarket.coordinator.db import migrate
from gpumarket.coordinator.db.base import Base
from tests.integration.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration

TABLES = {
    "auth_challenges",
    "developers",
    "providers",
    "offers",
    "gpu_reservations",
    "jobs",
    "job_events",
    "job_logs",
    "chain_txs",
    "chain_cursors",
    "outbox",
    "outbox_senders",
    "leases",
}


def test_upgrade_check_downgrade(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.upgrade(db_url)  # a second run (another replica starting) is a no-op
    engine = create_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert migrate.current_revision(engine) == "0007"
        with engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}),
                Base.metadata,
            )
        assert diff == [], f"models and migrations disagree: {diff}"

        migrate.downgrade(db_url, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert migrate.current_revision(engine) is None
    finally:
        engine.dispose()


def test_a_database_not_in_utf8_is_refused_in_one_line() -> None:
    url = fresh_postgres_database("ENCODING 'SQL_ASCII' TEMPLATE template0 LOCALE 'C'")
    result = subprocess.run(
        [sys.executable, "-m", "gpumarket.cli", "coordinator", "migrate", "--db-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is in SQL_ASCII encoding; gpumarket needs UTF8" in result.stderr
    assert "ENCODING 'UTF8'" in result.stderr
