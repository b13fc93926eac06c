"""The daemon's own decisions, against doubles of Docker and the coordinator: what a restart
re-attaches with (on an on-chain market, a job killed mid-run must still be claimed), which
work folders it clears, when a job is given back for want of room, and how the heartbeat
rides out an outage."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from tenacity import Retrying

from gpumarket.errors import InvalidRequest, Unreachable
from gpumarket.protocol import Assignment
from gpumarket.provider import retry
from gpumarket.provider.assignments import save_assignment
from gpumarket.provider.claims import ClaimSigner
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.provider.executor import DockerExecutor
from gpumarket.provider.gpu import NvmlInventory
from tests.unit.provider.doubles import (
    JOB_ID,
    FakeContainer,
    FakeCoordinator,
    FakeExecutor,
    assignment,
)
from tests.unit.provider.nvml_double import FakeNvml
from tests.unit.provider.test_claims import CHAIN


def daemon_with(
    tmp_path: Path, coordinator: FakeCoordinator, executor: FakeExecutor, **config: object
) -> ProviderDaemon:
    daemon = ProviderDaemon(
        ProviderConfig(work_dir=tmp_path / "work", **config),
        Account.create(),
        executor=executor,  # type: ignore[arg-type]
        inventory=NvmlInventory(FakeNvml([])),
    )
    daemon.client = coordinator  # type: ignore[assignment]
    daemon.claims = ClaimSigner(daemon.account, CHAIN)
    return daemon


def reconcile_and_finish(daemon: ProviderDaemon) -> None:
    """Run the restart's reconciliation and wait for the re-attached job to be reported."""
    finished = threading.Event()
    forget = daemon._finished

    def on_finish(job_id: str) -> None:
        forget(job_id)
        finished.set()

    daemon._finished = on_finish  # type: ignore[method-assign]
    daemon.reconcile()
    assert finished.wait(30), "the re-attached job was never reported"


def test_a_job_reattached_after_a_kill_is_claimed_on_chain(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    executor = FakeExecutor(tmp_path / "work")
    executor.containers = [FakeContainer()]
    daemon = daemon_with(tmp_path, coordinator, executor)
    reconcile_and_finish(daemon)
    assert coordinator.failures == []
    (result,) = coordinator.results
    assert result.claim is not None
    assert result.claim.amount_micros == 1_800_000 * 10 // 3600  # 10 s at 1.8 an hour


def test_a_reattached_job_is_claimed_with_the_terms_it_was_assigned(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    executor = FakeExecutor(tmp_path / "work")
    executor.containers = [FakeContainer()]
    save_assignment(executor.job_dir(JOB_ID), assignment(max_payment_micros=1_000))
    daemon = daemon_with(tmp_path, coordinator, executor)
    reconcile_and_finish(daemon)
    (result,) = coordinator.results
    assert result.claim is not None and result.claim.amount_micros == 1_000  # its escrow


def test_work_folders_without_a_job_are_cleared_and_nothing_else(tmp_path: Path) -> None:
    work = tmp_path / "work"
    stale, running = work / "job_aaaaaaaaaaaaaaaa", work / "job_bbbbbbbbbbbbbbbb"
    for folder in (stale / "outputs", running / "outputs", work / "notes"):
        folder.mkdir(parents=True)
    (work / "credential.json").write_text("{}")
    executor = DockerExecutor(ProviderConfig(work_dir=work), client=object())
    assert executor.remove_stale_work({running.name}) == [stale.name]
    assert {p.name for p in work.iterdir()} == {running.name, "credential.json", "notes"}


def runner_double(job: Assignment, released: bool) -> SimpleNamespace:
    done = threading.Event()
    if released:
        done.set()
    return SimpleNamespace(assignment=job, released=done, job_id=job.job_id)


def test_a_full_host_gives_the_job_back_as_busy_not_as_a_fault(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    daemon = daemon_with(
        tmp_path, coordinator, FakeExecutor(tmp_path / "work"), max_concurrent_jobs=1
    )
    daemon.runners = {JOB_ID: runner_double(assignment(), released=False)}  # type: ignore[dict-item]
    daemon.dispatch(assignment(job_id="job_1111111111111111"))
    (failure,) = coordinator.failures
    assert failure.busy and failure.retryable and failure.reason == "provider is at capacity"


def test_a_job_whose_result_is_reported_leaves_room_while_it_cleans_up(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    daemon = daemon_with(
        tmp_path, coordinator, FakeExecutor(tmp_path / "work"), max_concurrent_jobs=1
    )
    daemon.runners = {JOB_ID: runner_double(assignment(), released=True)}  # type: ignore[dict-item]
    started: list[str] = []
    daemon._start_runner = lambda assignment, existing=None: started.append(  # type: ignore[method-assign]
        assignment.job_id
    )
    daemon.dispatch(assignment(job_id="job_1111111111111111"))
    assert coordinator.failures == [] and started == ["job_1111111111111111"]
    assert daemon.heartbeat_body().running_jobs == []


class StopAfter:
    """The daemon's stop event, set once ``answers`` run out; its waits take no time."""

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.waited: list[float] = []

    def is_set(self) -> bool:
        return not self.answers

    def wait(self, timeout: float) -> bool:
        self.waited.append(timeout)
        return self.is_set()


def test_the_heartbeat_rides_out_an_outage_and_logs_a_refusal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []

    def instant(*args: Any, **kwargs: Any) -> Retrying:
        return retry.policy(*args, **kwargs).copy(sleep=waits.append)

    monkeypatch.setattr("gpumarket.provider.daemon.policy", instant)
    answers: list[object] = [Unreachable("down"), Unreachable("down"), 10.0, InvalidRequest("no")]

    def beat() -> float:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, float)
        return answer

    stop = StopAfter(answers)
    daemon = SimpleNamespace(stopping=stop, beat=beat)
    with caplog.at_level(logging.INFO, logger="gpumarket"):
        ProviderDaemon._heartbeat_loop(daemon)  # type: ignore[arg-type]
    assert len(waits) == 2 and 1 <= waits[0] <= 2 <= waits[1] <= 3  # growing, with jitter
    assert stop.waited[0] == 0 and 8 <= stop.waited[1] <= 12 and stop.waited[2] == 30
    assert [r.message for r in caplog.records if r.levelno == logging.ERROR] == [
        "coordinator refused the heartbeat: no"
    ]
