"""Stand-ins for the Docker side and the coordinator, recording what the daemon asks of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gpumarket.errors import GpumarketError
from gpumarket.protocol import (
    Assignment,
    FailureReport,
    JobSpec,
    JobState,
    JobView,
    LogAppend,
    LogAppendAck,
    ResultReport,
)
from gpumarket.provider.disk_watch import DiskUsage
from gpumarket.provider.executor import LABEL_JOB, Outcome
from gpumarket.settlement.signing import job_id_bytes

JOB_ID = "job_0123456789abcdef"
CHAIN_JOB_ID = "0x" + job_id_bytes(JOB_ID).hex()


def spec(max_duration_seconds: int = 3600) -> JobSpec:
    """A CPU job paying at most 2 an hour."""
    return JobSpec.model_validate(
        {
            "image": "busybox:1",
            "command": ["true"],
            "max_price_per_hour": "2",
            "max_duration_seconds": max_duration_seconds,
        }
    )


def assignment(
    job_id: str = JOB_ID, attempt: int = 1, max_duration_seconds: int = 3600, **extra: Any
) -> Assignment:
    """An on-chain assignment of a CPU job at 1.8 an hour."""
    values: dict[str, Any] = {
        "job_id": job_id,
        "spec": spec(max_duration_seconds),
        "gpu_uuids": [],
        "price_per_hour": Decimal("1.8"),
        "attempt": attempt,
        "lease_expires_at": datetime.now(UTC),
        "chain_job_id": CHAIN_JOB_ID,
        "max_payment_micros": 2_000_000,
        **extra,
    }
    return Assignment(**values)


def job_view(state: JobState = JobState.RUNNING, attempts: int = 1, **extra: Any) -> JobView:
    """The coordinator's view of the job as its provider reads it."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": JOB_ID,
        "state": state,
        "spec": spec(),
        "owner": "dev_1",
        "provider_id": "prov_1",
        "price_per_hour": Decimal("1.8"),
        "attempts": attempts,
        "created_at": now,
        "updated_at": now,
        "chain_job_id": CHAIN_JOB_ID,
        **extra,
    }
    return JobView(**values)


class FakeContainer:
    """A job's container that has already printed all it will."""

    def __init__(self, job_id: str = JOB_ID) -> None:
        self.labels = {LABEL_JOB: job_id}
        self.name = f"gpumarket-{job_id}"
        self.status = "running"

    def logs(self, **_: Any) -> Iterator[bytes]:
        return iter(())


class FakeExecutor:
    """The Docker side: each job ends with ``outcome``; removals are recorded."""

    def __init__(self, work_dir: Path, outcome: Outcome | None = None) -> None:
        self.work_dir = work_dir
        self.outcome = outcome or Outcome(exit_code=0, usage_seconds=10.0)
        self.containers: list[FakeContainer] = []
        self.removed: list[str] = []
        self.disk_usage = DiskUsage()
        """What every disk measurement of a job finds."""
        self.killed: list[Any] = []

    def job_dir(self, job_id: str) -> Path:
        return self.work_dir / job_id

    def engine_problem(self) -> None:
        return None

    def wait(self, container: Any, timeout: float, cancelled: Callable[[], bool]) -> Outcome:
        return self.outcome

    @staticmethod
    def exec_failure(container: Any, outcome: Outcome, spec: JobSpec) -> None:
        return None

    def disk_meter(self, container: Any) -> Callable[[], DiskUsage]:
        return lambda: self.disk_usage

    def kill(self, container: Any) -> None:
        self.killed.append(container)

    def remove(self, job_id: str, keep_work: bool = False) -> None:
        self.removed.append(job_id)

    def labelled_containers(self) -> list[FakeContainer]:
        return self.containers

    def remove_stale_work(self, keep: set[str]) -> list[str]:
        return []


class FakeCoordinator:
    """The provider's client: the job view it serves, results it takes or ``refuse_result``s."""

    def __init__(self, view: JobView | None = None) -> None:
        self.view = view or job_view()
        self.refuse_result: GpumarketError | None = None
        self.results: list[ResultReport] = []
        self.failures: list[FailureReport] = []

    def job(self, job_id: str) -> JobView:
        return self.view

    def append_logs(self, job_id: str, body: LogAppend) -> LogAppendAck:
        return LogAppendAck(
            accepted=len(body.chunks), duplicates=0, truncated=False, next_seq=body.chunks[-1].seq
        )

    def upload_outputs(self, job_id: str, path: Path, digest: str) -> None:
        return None

    def report_result(self, job_id: str, report: ResultReport) -> JobView:
        if self.refuse_result is not None:
            raise self.refuse_result
        self.results.append(report)
        return self.view

    def report_failure(self, job_id: str, report: FailureReport) -> JobView:
        self.failures.append(report)
        return self.view
