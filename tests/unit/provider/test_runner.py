"""A finished run's report, against doubles: a run stopped at its time limit is claimed for the
limit, and a report the coordinator refuses (a 4xx) fails the job rather than requeueing it."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from gpumarket.errors import InvalidRequest
from gpumarket.provider.claims import ClaimSigner
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.executor import Outcome
from gpumarket.provider.runner import JobRunner
from tests.unit.provider.doubles import (
    JOB_ID,
    FakeContainer,
    FakeCoordinator,
    FakeExecutor,
    assignment,
)
from tests.unit.provider.test_claims import CHAIN


def run_to_the_end(
    tmp_path: Path, coordinator: FakeCoordinator, outcome: Outcome, max_duration_seconds: int
) -> FakeExecutor:
    """Re-attach to a container that ends with ``outcome`` and report it, on this thread."""
    executor = FakeExecutor(tmp_path / "work", outcome)
    JobRunner(
        assignment(max_duration_seconds=max_duration_seconds),
        executor,  # type: ignore[arg-type]
        coordinator,  # type: ignore[arg-type]
        ProviderConfig(work_dir=tmp_path / "work"),
        lambda _: None,
        lambda _: None,
        existing=FakeContainer(),
        claims=ClaimSigner(Account.create(), CHAIN),
    ).run()
    return executor


def test_a_run_stopped_at_its_time_limit_claims_the_limit(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    stopped = Outcome(exit_code=143, usage_seconds=15.504, timed_out=True)
    run_to_the_end(tmp_path, coordinator, stopped, max_duration_seconds=15)
    assert coordinator.failures == []
    (result,) = coordinator.results
    assert result.claim is not None
    assert result.claim.amount_micros == 1_800_000 * 15 // 3600  # 15 s, not 15.504 s


def test_a_refused_report_fails_the_job_instead_of_requeueing_it(tmp_path: Path) -> None:
    coordinator = FakeCoordinator()
    coordinator.refuse_result = InvalidRequest("the claim of 7752 micros is over the 7500")
    executor = run_to_the_end(tmp_path, coordinator, Outcome(0, 10.0), max_duration_seconds=60)
    (failure,) = coordinator.failures
    assert not failure.retryable and not failure.busy
    assert "refused the provider's report: the claim of 7752 micros" in failure.reason
    assert executor.removed == [JOB_ID]
