"""Why a daemon is idle, said once: a Docker engine that stopped answering (it takes no jobs
it could only fail, and takes them again once the engine is back), or the coordinator holding
jobs back (its free stake is all locked by results in their windows)."""

from __future__ import annotations

import logging
from pathlib import Path

import docker
import pytest
from eth_account import Account

from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.provider.executor import DockerExecutor
from gpumarket.provider.gpu import NvmlInventory
from tests.unit.provider.nvml_double import FakeNvml


class AnsweringEngine:
    """Stands in for a running engine: only ping is asked of it here."""

    def ping(self) -> bool:
        return True


def test_no_jobs_while_the_engine_does_not_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ProviderConfig(work_dir=tmp_path / "work")
    # a real client of an engine whose socket is gone (the version given: no call at creation)
    gone = docker.DockerClient(base_url=f"unix://{tmp_path}/docker.sock", version="1.41")
    executor = DockerExecutor(config, client=gone)
    daemon = ProviderDaemon(
        config, Account.create(), executor=executor, inventory=NvmlInventory(FakeNvml([]))
    )
    caplog.set_level(logging.INFO, logger="gpumarket.provider.daemon")

    assert daemon.heartbeat_body().accepting is False
    assert daemon.heartbeat_body().accepting is False
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "the Docker engine does not answer" in warned[0]

    executor.docker = AnsweringEngine()  # type: ignore[assignment]
    assert daemon.heartbeat_body().accepting is True
    assert "the Docker engine answers again: taking jobs" in caplog.text
    daemon.stopping.set()
    assert daemon.heartbeat_body().accepting is False


def test_jobs_held_back_by_the_coordinator_are_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ProviderConfig(work_dir=tmp_path / "work")
    daemon = ProviderDaemon(
        config,
        Account.create(),
        executor=DockerExecutor(config, client=AnsweringEngine()),  # type: ignore[arg-type]
        inventory=NvmlInventory(FakeNvml([])),
    )
    caplog.set_level(logging.INFO, logger="gpumarket.provider.daemon")
    stake = "free stake 50.000000 < the 100.000000 each result locks until its window ends"
    daemon._note_held_back([stake])
    daemon._note_held_back([stake])
    daemon._note_held_back([])
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert said[0].startswith(f"the coordinator matches no job here: {stake}; stake more with")
    assert said[1] == "the coordinator matches jobs here again"
