"""Integration fixtures: real coordinator processes over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.integration.processes import CoordinatorProcess

POSTGRES_URL = os.environ.get("GPUMARKET_TEST_POSTGRES_URL")


def fresh_postgres_database(options: str = "") -> str:
    """Create an empty database on the test server (``options``: CREATE DATABASE's, e.g. an
    encoding) and return its URL."""
    if not POSTGRES_URL:
        pytest.skip("GPUMARKET_TEST_POSTGRES_URL is not set (make test sets it up)")
    name = f"gm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" {options}'))
    admin.dispose()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each integration test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return fresh_postgres_database()


@pytest.fixture
def coordinator(db_url: str, tmp_path: Path) -> Iterator[CoordinatorProcess]:
    """A coordinator started with ``gpumarket coordinator serve`` on a free port."""
    with CoordinatorProcess.start(db_url, tmp_path / "data", admin_token=ADMIN_TOKEN) as proc:
        yield proc
