"""A pull-progress report the coordinator does not take costs that one report, whether the
coordinator is out of reach or fails on it (a 500, no longer an ``Unreachable``): the pull goes
on. A job that is no longer ours still abandons it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumarket.errors import Conflict, GpumarketError, InternalServerError, Unreachable
from gpumarket.protocol import PreparationProgress
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.pulls import PullProgress
from gpumarket.provider.runner import JobRunner
from tests.unit.provider.doubles import FakeExecutor, assignment


class _Coordinator:
    def __init__(self, failure: GpumarketError) -> None:
        self.failure = failure

    def progress(self, job_id: str, progress: PreparationProgress) -> None:
        raise self.failure


def _runner(tmp_path: Path, failure: GpumarketError) -> JobRunner:
    return JobRunner(
        assignment(),
        FakeExecutor(tmp_path / "work"),  # type: ignore[arg-type]
        _Coordinator(failure),  # type: ignore[arg-type]
        ProviderConfig(work_dir=tmp_path / "work"),
        lambda _: None,
        lambda _: None,
    )


@pytest.mark.parametrize(
    "failure",
    [
        Unreachable("cannot reach the coordinator"),
        InternalServerError("internal error in the coordinator"),
    ],
)
def test_a_report_the_coordinator_cannot_take_costs_only_itself(
    tmp_path: Path, failure: GpumarketError
) -> None:
    _runner(tmp_path, failure)._report_pull(PullProgress("busybox:1"))


def test_a_job_no_longer_ours_abandons_the_pull(tmp_path: Path) -> None:
    with pytest.raises(Conflict):
        _runner(tmp_path, Conflict("job is CANCELLED"))._report_pull(PullProgress("busybox:1"))
