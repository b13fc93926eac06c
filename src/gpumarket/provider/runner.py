"""One job from assignment to report: checks, image, container, logs, limits, outputs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import docker.errors
from docker.models.containers import Container

from gpumarket.errors import Conflict, GpumarketError, NotFound
from gpumarket.protocol import Assignment, FailureReport, ResultReport
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.executor import DockerExecutor, JobRefused, Outcome
from gpumarket.provider.logship import LogShipper
from gpumarket.provider.outputs import OutputsTooLarge, pack_outputs
from gpumarket.provider.retry import with_retry
from gpumarket.sdk import ProviderClient

log = logging.getLogger(__name__)

GpuCheck = Callable[[Assignment], str | None]
"""Returns why the assigned GPUs are not the advertised ones, or None when they are."""


class JobRunner(threading.Thread):
    """Runs one job on its own thread and reports it; ``cancel()`` stops it."""

    def __init__(
        self,
        assignment: Assignment,
        executor: DockerExecutor,
        client: ProviderClient,
        config: ProviderConfig,
        check_gpus: GpuCheck,
        on_finish: Callable[[str], None],
        existing: Container | None = None,
    ) -> None:
        super().__init__(name=f"job-{assignment.job_id}", daemon=True)
        self.assignment = assignment
        self.executor = executor
        self.client = client
        self.config = config
        self.check_gpus = check_gpus
        self.on_finish = on_finish
        self.existing = existing
        self._cancel = threading.Event()
        self.handed_back = threading.Event()

    @property
    def job_id(self) -> str:
        """The job this runner owns."""
        return self.assignment.job_id

    def cancel(self) -> None:
        """Stop the container; nothing is reported (the coordinator already knows)."""
        self._cancel.set()

    def hand_back(self) -> None:
        """Stop the container and give the job back to the queue (daemon shutting down)."""
        self.handed_back.set()
        self._cancel.set()

    def run(self) -> None:
        job_dir = self.executor.job_dir(self.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        shipper = LogShipper(
            self.client, self.job_id, self.config.max_log_bytes, job_dir / "logs.json"
        )
        keep_work = False
        try:
            container = self.existing or self._start(shipper)
            if container is None:
                return
            outcome = self._follow(container, shipper)
            if outcome.cancelled:
                shipper.system(
                    "stopped: the job was cancelled"
                    if not self.handed_back.is_set()
                    else "stopped: the provider is shutting down; handed back"
                )
                shipper.close()
                if self.handed_back.is_set():
                    self._report_failure(
                        "provider shut down before the job finished", retryable=True
                    )
                return
            self._report(outcome, shipper)
        except JobRefused as exc:
            shipper.system(f"refused: {exc.reason}")
            shipper.close()
            self._report_failure(exc.reason, exc.retryable)
        except (Conflict, NotFound) as exc:
            log.info("job %s is no longer ours: %s", self.job_id, exc.message)
            shipper.close(timeout=5)
        except Exception as exc:
            log.exception("job %s failed on this provider", self.job_id)
            shipper.close(timeout=5)
            keep_work = isinstance(exc, GpumarketError)  # coordinator unreachable: keep results
            self._report_failure(f"provider error: {exc}", retryable=True)
        finally:
            try:
                self.executor.remove(self.job_id, keep_work=keep_work)
            except docker.errors.APIError:
                log.exception("cleanup of %s failed", self.job_id)
            self.on_finish(self.job_id)

    def _start(self, shipper: LogShipper) -> Container | None:
        reason = self.check_gpus(self.assignment)
        if reason is not None:
            raise JobRefused(reason, retryable=True)
        self.executor.ensure_image(self.assignment.spec.image, shipper.system)
        container = self.executor.create(self.assignment)
        if self._cancel.is_set():
            return None
        with_retry(lambda: self.client.started(self.job_id, container.id), "report started")
        container.start()
        return container

    def _follow(self, container: Container, shipper: LogShipper) -> Outcome:
        readers = [
            threading.Thread(
                target=_pump,
                args=(container, stream, shipper),
                daemon=True,
                name=f"{stream}-{self.job_id}",
            )
            for stream in ("stdout", "stderr")
        ]
        for reader in readers:
            reader.start()
        outcome = self.executor.wait(
            container, self.assignment.spec.max_duration_seconds, self._cancel.is_set
        )
        for reader in readers:
            reader.join(10)
        return outcome

    def _report(self, outcome: Outcome, shipper: LogShipper) -> None:
        spec = self.assignment.spec
        if outcome.oom_killed:
            shipper.system(f"killed: the job went over its memory limit of {spec.resources.memory}")
        if outcome.timed_out:
            shipper.system(f"stopped: over max_duration_seconds={spec.max_duration_seconds}")
        shipper.system(f"exit code {outcome.exit_code} after {outcome.usage_seconds:.1f}s")
        job_dir = self.executor.job_dir(self.job_id)
        output_hash = output_size = None
        try:
            packed = pack_outputs(
                job_dir / "outputs", job_dir / "outputs.tar.gz", self.config.max_output_bytes
            )
        except OutputsTooLarge as exc:
            shipper.system(f"outputs refused: {exc}")
        else:
            for note in packed.skipped:
                shipper.system(f"outputs: left out {note}")
            with_retry(
                lambda: self.client.upload_outputs(self.job_id, packed.path, packed.digest),
                "upload outputs",
            )
            output_hash, output_size = packed.digest, packed.size
        if not shipper.close():
            log.warning("some log lines of %s could not be delivered", self.job_id)
        with_retry(
            lambda: self.client.report_result(
                self.job_id,
                ResultReport(
                    exit_code=outcome.exit_code,
                    usage_seconds=outcome.usage_seconds,
                    output_hash=output_hash,
                    output_size=output_size,
                ),
            ),
            "report result",
        )

    def _report_failure(self, reason: str, retryable: bool) -> None:
        try:
            with_retry(
                lambda: self.client.report_failure(
                    self.job_id, FailureReport(reason=reason[:2000], retryable=retryable)
                ),
                "report failure",
            )
        except GpumarketError as exc:
            log.warning("could not report the failure of %s: %s", self.job_id, exc.message)


def _pump(container: Container, stream: str, shipper: LogShipper) -> None:
    """Copy one output stream from the start (skipping what was shipped before a restart)."""
    skip = shipper.skip_for(stream)
    try:
        for data in container.logs(
            stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=True
        ):
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            if data:
                shipper.feed(stream, data)
    except docker.errors.APIError as exc:
        log.warning("reading %s of %s stopped: %s", stream, container.name, exc)
