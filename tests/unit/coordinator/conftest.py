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
from gpumarket.coordinator.services.offchain import OffchainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import Heartbeat, JobSpec, Role
from tests.conftest import sqlite_url


class RecordingSettlement(OffchainSettlement):
    """A settlement double that records every money step, in order, for assertions."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def fund_on_submit(self, session: Session, job: Any, spec: Any) -> bool:
        self.calls.append(("fund", job.id))
        return super().fund_on_submit(session, job, spec)

    def apply_commit(self, session: Session, job: Any, committed: Any) -> Any:
        self.calls.append(("commit", job.id))
        return super().apply_commit(session, job, committed)

    def apply_finalize(self, session: Session, job: Any, ref: str, finalized: Any) -> bool:
        self.calls.append(("finalize", job.id))
        return super().apply_finalize(session, job, ref, finalized)

    def refund(self, session: Session, job: Any, reason: str) -> None:
        self.calls.append(("refund", job.id))
        super().refund(session, job, reason)

    def apply_challenge(self, session: Session, job: Any, challenged: Any) -> None:
        self.calls.append(("challenge", job.id))

    def apply_ruling(self, session: Session, job: Any, at_fault: bool, ruled: Any) -> bool:
        self.calls.append(("resolve", job.id))
        return super().apply_ruling(session, job, at_fault, ruled)


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
