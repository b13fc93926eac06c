"""A migrated SQLite database and builders for service-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db import migrate
from gpumarket.coordinator.db.base import new_id
from gpumarket.coordinator.db.engine import make_engine, make_session_factory, session_scope
from gpumarket.coordinator.db.models import Developer, Provider
from gpumarket.coordinator.services import jobs, providers
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.settlement import OffchainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import Heartbeat, JobSpec, Role
from tests.conftest import sqlite_url


class RecordingSettlement(OffchainSettlement):
    """A settlement double that records every call, in order, for assertions."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def open_escrow(self, job: Any) -> None:
        self.calls.append(("open_escrow", job.id))

    def commit_result(self, job: Any) -> None:
        self.calls.append(("commit_result", job.id))

    def finalize(self, job: Any) -> None:
        self.calls.append(("finalize", job.id))

    def refund(self, job: Any, reason: str) -> None:
        self.calls.append(("refund", job.id))

    def open_dispute(self, job: Any) -> None:
        self.calls.append(("open_dispute", job.id))


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated SQLite database."""
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def svc_settings(tmp_path: Path) -> CoordinatorSettings:
    """Settings for service tests."""
    return CoordinatorSettings(
        db_url=sqlite_url(tmp_path),
        data_dir=tmp_path / "data",
        background=False,
        challenge_window_seconds=60,
        max_attempts=2,
    )


@pytest.fixture
def ledger() -> RecordingSettlement:
    """The recording settlement double."""
    return RecordingSettlement()


def add_developer(factory: sessionmaker[Session]) -> Principal:
    """A developer row, returned as its principal."""
    with session_scope(factory) as session:
        dev = Developer(
            id=new_id("dev"),
            address="0x" + new_id("a")[2:].ljust(40, "0")[:40],
            api_key_hash=new_id("h"),
        )
        session.add(dev)
        return Principal(Role.DEVELOPER, dev.id, dev.address)


def add_provider(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    beat: Heartbeat,
    region: str | None = None,
    **columns: Any,
) -> Principal:
    """A provider that has sent ``beat``; extra ``columns`` are set on its row afterwards."""
    with session_scope(factory) as session:
        row = Provider(
            id=new_id("prv"),
            address=new_id("addr"),
            api_key_hash=new_id("h"),
            region=region,
            gpus=[],
            telemetry=[],
        )
        session.add(row)
        session.flush()
        principal = Principal(Role.PROVIDER, row.id, row.address)
        providers.heartbeat(session, principal, beat, settings)
        for key, value in columns.items():
            setattr(row, key, value)
    return principal


def submit(
    factory: sessionmaker[Session],
    owner: Principal,
    spec: dict[str, Any],
    settings: CoordinatorSettings,
    ledger: OffchainSettlement,
) -> str:
    """Submit a job through the service; returns its id."""
    with session_scope(factory) as session:
        return jobs.submit(session, owner, JobSpec.model_validate(spec), None, ledger, settings).id
