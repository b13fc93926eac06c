"""The job's ``resources.disk`` on the provider: what counts as written, the watch that kills a
job over its limit, and the runner failing such a job for good (issue 12: a job with the default
10GB wrote 5 GB to /outputs before the output cap refused it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from eth_account import Account

from gpumarket.protocol import JobSpec
from gpumarket.provider.claims import ClaimSigner
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.disk_watch import (
    MB,
    MIN_INTERVAL,
    ContainerDisk,
    DiskUsage,
    DiskWatch,
    over_limit_reason,
    tree_bytes,
)
from gpumarket.provider.executor import DockerExecutor, Outcome
from gpumarket.provider.runner import JobRunner
from tests.unit.provider.doubles import (
    JOB_ID,
    FakeContainer,
    FakeCoordinator,
    FakeExecutor,
    assignment,
)
from tests.unit.provider.test_claims import CHAIN


def write(path: Path, size: int) -> Path:
    """A file of ``size`` real (non-sparse) bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


# ------------------------------------------------------------------ what counts


def test_a_folder_counts_its_files_blocks_once_each_and_never_what_links_point_to(
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "outputs"
    big = write(tmp_path / "elsewhere" / "big", 4 * MB)
    write(outputs / "a", MB)
    write(outputs / "deep" / "er" / "b", MB)
    os.link(outputs / "a", outputs / "a-again")  # a hard link takes no more room
    (outputs / "link").symlink_to(big)  # the provider's file, not the job's
    (outputs / "folder-link").symlink_to(big.parent, target_is_directory=True)
    with (outputs / "sparse").open("wb") as sparse:  # claims 1 GB, holds nothing
        sparse.truncate(1024 * MB)

    total = tree_bytes(outputs)

    assert 2 * MB <= total < 2 * MB + 64 * 1024  # two files, plus the folders' own blocks


def test_a_missing_folder_has_written_nothing(tmp_path: Path) -> None:
    assert tree_bytes(tmp_path / "not-there") == 0


def test_the_reason_names_the_limit_as_written_where_the_bytes_went_and_how_to_get_more() -> None:
    usage = DiskUsage({"/outputs": 21 * MB, "/tmp": MB, "writable layer": 0})
    reason = over_limit_reason("20MB", usage)
    assert reason == (
        "wrote more than the job's disk limit of 20MB (21.0MB in /outputs, 1.0MB in /tmp); "
        "ask for more with resources.disk"
    )
    assert usage.total == 22 * MB


# ------------------------------------------------------------------ the container's places


class FakeApi:
    """The engine's inspect (and df) answers for one container, recording the parameters."""

    def __init__(self, inspect: dict[str, Any], volumes: list[dict[str, Any]] | None = None):
        self.inspect = inspect
        self.volumes = volumes or []
        self.params: list[dict[str, Any]] = []
        self.df_calls = 0

    def _url(self, template: str, *args: str) -> str:
        return template.format(*args)

    def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        self.params.append(params)
        return self.inspect

    def _result(self, response: dict[str, Any], json: bool) -> dict[str, Any]:
        return response

    def df(self) -> dict[str, Any]:
        self.df_calls += 1
        return {"Volumes": self.volumes}


def test_writable_mounts_volumes_and_a_writable_layer_count_and_read_only_mounts_do_not(
    tmp_path: Path,
) -> None:
    write(tmp_path / "outputs" / "result", 2 * MB)
    write(tmp_path / "inputs" / "data", 8 * MB)
    api = FakeApi(
        {
            "HostConfig": {"ReadonlyRootfs": False, "Tmpfs": {}},
            "State": {"Pid": 0},
            "SizeRw": 3 * MB,
            "Mounts": [
                {
                    "Type": "bind",
                    "RW": True,
                    "Destination": "/outputs",
                    "Source": str(tmp_path / "outputs"),
                },
                {
                    "Type": "bind",
                    "RW": False,
                    "Destination": "/inputs",
                    "Source": str(tmp_path / "inputs"),
                },
                # an image's VOLUME, in a folder this daemon may not read: the engine sizes it
                {
                    "Type": "volume",
                    "RW": True,
                    "Destination": "/data",
                    "Name": "anon1",
                    "Source": str(tmp_path / "no-access"),
                },
            ],
        },
        volumes=[{"Name": "anon1", "UsageData": {"Size": 5 * MB}}, {"Name": "other"}],
    )

    usage = ContainerDisk(api, "c0ffee").measure()

    assert usage.parts["/outputs"] >= 2 * MB
    assert "/inputs" not in usage.parts
    assert usage.parts["/data"] == 5 * MB
    assert usage.parts["writable layer"] == 3 * MB
    assert {"size": 1} in api.params  # SizeRw is only there when asked for
    assert api.df_calls == 1


def test_a_read_only_container_is_not_asked_for_its_layer_size(tmp_path: Path) -> None:
    api = FakeApi(
        {
            "HostConfig": {"ReadonlyRootfs": True, "Tmpfs": {"/tmp": "size=16m"}},
            "State": {"Pid": 0},  # ended: its tmpfs is gone
            "Mounts": [],
        }
    )
    disk = ContainerDisk(api, "c0ffee")
    assert disk.measure().total == 0
    assert disk.measure().total == 0
    assert api.params == [{}, {}]
    assert api.df_calls == 0


# ------------------------------------------------------------------ the watch


def test_a_job_over_its_limit_is_stopped_once_and_the_watch_ends() -> None:
    sizes: Iterator[int] = iter([MB, 5 * MB, 11 * MB, 12 * MB])
    stopped: list[DiskUsage] = []
    watch = DiskWatch(
        lambda: DiskUsage({"/outputs": next(sizes)}), 10 * MB, stopped.append, interval=0.01
    )
    watch.start()
    watch.join()
    assert watch.over == DiskUsage({"/outputs": 11 * MB})
    assert stopped == [watch.over]
    watch.check()  # the runner's last look, after the container ended
    assert stopped == [DiskUsage({"/outputs": 11 * MB})]


def test_the_watch_ends_with_its_container_and_outlives_an_engine_hiccup() -> None:
    answers: list[Any] = [docker.errors.APIError("engine busy"), DiskUsage(), None]

    def measure() -> DiskUsage:
        answer = answers.pop(0)
        if answer is None:
            raise docker.errors.NotFound("no such container")
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, DiskUsage)
        return answer

    watch = DiskWatch(measure, MB, lambda _: pytest.fail("not over"), interval=0.01)
    watch.start()
    watch.join()
    assert answers == [] and watch.over is None


def test_a_stopped_watch_ends_without_stopping_the_job() -> None:
    watch = DiskWatch(lambda: DiskUsage(), MB, lambda _: pytest.fail("not over"), interval=0.01)
    watch.start()
    watch.stop()
    assert not watch.is_alive() and watch.over is None


def test_the_watch_looks_sooner_as_a_writer_nears_the_limit() -> None:
    watch = DiskWatch(lambda: DiskUsage(), 100 * MB, lambda _: None, interval=2.0)
    assert watch._next_wait(None, 0.0, 0) == MIN_INTERVAL  # the first rate, soon
    assert watch._next_wait((0.0, 10 * MB), 2.0, 10 * MB) == 2.0  # idle: the full interval
    # 10 MB/s with 80 MB to go: 8 s away, so the full interval
    assert watch._next_wait((0.0, 0), 2.0, 20 * MB) == 2.0
    # 10 MB/s with 20 MB to go: 2 s away, look in 1 s
    assert watch._next_wait((0.0, 60 * MB), 2.0, 80 * MB) == pytest.approx(1.0)
    # 1 GB/s: as soon as it may
    assert watch._next_wait((0.0, 0), 0.05, 50 * MB) == MIN_INTERVAL


# ------------------------------------------------------------------ the runner and executor


def run_reattached(tmp_path: Path, executor: FakeExecutor) -> FakeCoordinator:
    """Re-attach to a container that has ended and report it, on this thread."""
    coordinator = FakeCoordinator()
    JobRunner(
        assignment(),
        executor,  # type: ignore[arg-type]
        coordinator,  # type: ignore[arg-type]
        ProviderConfig(work_dir=tmp_path / "work", disk_check_seconds=0.01),
        lambda _: None,
        lambda _: None,
        existing=FakeContainer(),
        claims=ClaimSigner(Account.create(), CHAIN),
    ).run()
    return coordinator


def test_a_job_that_wrote_past_its_disk_limit_is_killed_and_fails_for_good(
    tmp_path: Path,
) -> None:
    executor = FakeExecutor(tmp_path / "work", Outcome(exit_code=137, usage_seconds=3.0))
    executor.disk_usage = DiskUsage({"/outputs": 10 * 1024 * MB + MB})  # the default is 10GB

    coordinator = run_reattached(tmp_path, executor)

    (failure,) = coordinator.failures
    assert not failure.retryable
    assert failure.reason.startswith("wrote more than the job's disk limit of 10GB (")
    assert failure.reason.endswith("ask for more with resources.disk")
    assert coordinator.results == []  # neither outputs nor a claim for it
    assert executor.killed  # SIGKILL, not a graceful stop
    assert executor.removed == [JOB_ID]


def test_a_job_within_its_disk_limit_is_reported_as_usual(tmp_path: Path) -> None:
    executor = FakeExecutor(tmp_path / "work", Outcome(exit_code=0, usage_seconds=3.0))
    executor.disk_usage = DiskUsage({"/outputs": 10 * 1024 * MB})  # exactly the limit

    coordinator = run_reattached(tmp_path, executor)

    assert coordinator.failures == [] and len(coordinator.results) == 1
    assert executor.killed == []


def test_tmp_is_never_bigger_than_the_jobs_disk(tmp_path: Path) -> None:
    executor = DockerExecutor(
        ProviderConfig(work_dir=tmp_path, tmp_size_mb=1024),
        client=object(),
    )

    def job(disk: str) -> JobSpec:
        return JobSpec.model_validate(
            {
                "image": "busybox:1",
                "command": ["true"],
                "max_price_per_hour": "1",
                "resources": {"disk": disk},
            }
        )

    assert executor.tmp_size_mb(job("10GB")) == 1024
    assert executor.tmp_size_mb(job("20MB")) == 20


class KillRefused:
    """A container whose kill the engine answers with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status

    def kill(self) -> None:
        response = type("Response", (), {"status_code": self.status, "reason": "", "url": ""})()
        raise docker.errors.APIError("refused", response=response)


def test_killing_a_container_that_already_ended_is_not_an_error() -> None:
    DockerExecutor.kill(KillRefused(409))
    with pytest.raises(docker.errors.APIError):
        DockerExecutor.kill(KillRefused(500))
