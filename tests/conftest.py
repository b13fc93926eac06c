"""Fixtures for every suite: a coordinator app on a throw-away database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpumarket.coordinator.app import create_app
from gpumarket.coordinator.settings import CoordinatorSettings

ADMIN_TOKEN = "test-admin-token"


def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file under ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'coordinator.db'}"


@pytest.fixture
def settings(tmp_path: Path) -> CoordinatorSettings:
    """Settings on a fresh SQLite file, background loops off (tests drive them)."""
    return CoordinatorSettings(
        db_url=os.environ.get("GPUMARKET_TEST_DB_URL") or sqlite_url(tmp_path),
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        background=False,
        challenge_window_seconds=60,
        # tests sign in far more often than a client should; rate limits are tested on their own
        rate_limit_auth=None,
        rate_limit_match=None,
        rate_limit_submit=None,
        # a drawn liveness re-run is one more job in the market; tested on its own
        liveness_sampling=False,
    )


@pytest.fixture
def client(settings: CoordinatorSettings) -> Iterator[TestClient]:
    """The coordinator app in-process, migrated."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
