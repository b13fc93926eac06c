"""One job from assignment to report: checks, image, container, logs, limits, outputs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import docker.utils.socket
from docker.models.containers import Container

from gpumarket.errors import (
    Conflict,
    GpumarketError,
    InternalServerError,
    NotFound,
    Unreachable,
)
from gpumarket.protocol import (
    Assignment,
    FailureReport,
    ResultReport,
    from_micros,
    to_micros,
)
from gpumarket.provider.assignments import save_assignment
from gpumarket.provider.claims import ClaimSigner
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.disk_watch import MB, DiskUsage, DiskWatch, over_limit_reason
from gpumarket.provider.executor import DockerExecutor, JobRefused, Outcome
from gpumarket.provider.logship import LogShipper
from gpumarket.provider.outputs import OutputsTooLarge, pack_outputs
from gpumarket.provider.pulls import PullProgress
from gpumarket.provider.retry import is_final, with_retry
from gpumarket.sdk import ProviderClient

log = logging.getLogger(__name__)

GpuCheck = Callable[[Assignment], str | None]
"""Returns why the assigned GPUs are not the advertised ones, or None when they are."""


PROGRESS_INTERVAL = 1.0
"""Seconds between two pull-progress reports of one job."""


class _PullAbandoned(Exception):
    """The job was cancelled while its image was being pulled."""


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
        claims: ClaimSigner | None = None,
    ) -> None:
        super().__init__(name=f"job-{assignment.job_id}", daemon=True)
        self.assignment = assignment
        self.executor = executor
        self.client = client
        self.config = config
        self.check_gpus = check_gpus
        self.on_finish = on_finish
        self.existing = existing
        self.claims = claims
        self._cancel = threading.Event()
        self.handed_back = threading.Event()
        self.released = threading.Event()
        """Set once the job's outcome has been told (its container has ended): the coordinator
        has freed its slot, so this host has room for another job while this one cleans up."""
        self._reader: threading.Thread | None = None
        self._last_progress = float("-inf")
        self.disk_over: DiskUsage | None = None
        """What the job had written when it went over its ``resources.disk`` (it was killed)."""

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
        """The job from assignment to report, on this runner's thread: start (or re-attach to)
        its container, follow it, then report the result, the refusal or the failure; the
        container and the job's work folder are removed whatever happened."""
        job_dir = self.executor.job_dir(self.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        if self.existing is None:  # what a restart needs to finish it (its claim above all)
            save_assignment(job_dir, self.assignment)
        shipper = LogShipper(
            self.client, self.job_id, self.config.max_log_bytes, job_dir / "logs.json"
        )
        keep_work = False
        if self.existing is None:
            spec = self.assignment.spec
            gpus = len(self.assignment.gpu_uuids)
            log.info(
                "%s: taken: %s, %s at %s/h",
                self.job_id,
                spec.image,
                f"{gpus} GPU(s)" if gpus else f"{spec.resources.cpu:g} CPU(s)",
                self.assignment.price_per_hour,
            )
        try:
            container = self.existing or self._start(shipper)
            if container is None:
                if self.handed_back.is_set():  # shutting down before it started (its pull)
                    self._hand_back(shipper, "provider shut down before the job started")
                return
            outcome = self._follow(container, shipper)
            cancelled_by_developer = outcome.cancelled and not self.handed_back.is_set()
            if self.disk_over is not None and not cancelled_by_developer:
                self._fail_over_disk(self.disk_over, shipper)
                return
            refused = self.executor.exec_failure(container, outcome, self.assignment.spec)
            if refused is not None:
                raise refused
            if outcome.cancelled:
                if self.handed_back.is_set():
                    self._hand_back(shipper, "provider shut down before the job finished")
                    return
                log.info("%s: cancelled after %.1fs", self.job_id, outcome.usage_seconds)
                shipper.system("stopped: the job was cancelled")
                shipper.close()
                if self.claims is not None:
                    self._claim_cancelled_run(outcome)
                return
            self._report(outcome, shipper)
        except JobRefused as exc:
            log.info("%s: refused: %s", self.job_id, exc.reason)
            shipper.system(f"refused: {exc.reason}")
            shipper.close()
            self._report_failure(exc.reason, exc.retryable)
        except (Conflict, NotFound) as exc:
            log.info("job %s is no longer ours: %s", self.job_id, exc.message)
            shipper.close(timeout=5)
        except GpumarketError as exc:
            shipper.close(timeout=5)
            if is_final(exc):  # the coordinator refused what we sent: sending it again won't do
                log.error("%s: the coordinator refused this run's report: %s", self.job_id, exc)
                self._report_failure(
                    f"the coordinator refused the provider's report: {exc.message}",
                    retryable=False,
                )
            else:  # out of reach for too long: keep the results for the owner to look at
                log.exception("job %s failed on this provider", self.job_id)
                keep_work = True
                self._report_failure(f"provider error: {exc}", retryable=True)
        except Exception as exc:
            log.exception("job %s failed on this provider", self.job_id)
            shipper.close(timeout=5)
            self._report_failure(f"provider error: {exc}", retryable=True)
        finally:
            self.released.set()
            try:
                self.executor.remove(self.job_id, keep_work=keep_work)
            except docker.errors.APIError:
                log.exception("cleanup of %s failed", self.job_id)
            self.on_finish(self.job_id)

    def _start(self, shipper: LogShipper) -> Container | None:
        reason = self.check_gpus(self.assignment)
        if reason is not None:
            raise JobRefused(reason, retryable=True)
        try:
            self.executor.ensure_image(
                self.assignment.spec.image, shipper.system, self._report_pull
            )
        except _PullAbandoned:
            return None
        container = self.executor.create(self.assignment)
        if self._cancel.is_set():
            return None
        # attached here, before starting, not in the reader thread: a thread that attached
        # late would miss what a short job printed (its output is not replayed)
        sock = _attach(container)
        self._reader = threading.Thread(
            target=_pump,
            args=(container, shipper, sock),
            daemon=True,
            name=f"output-{self.job_id}",
        )
        self._reader.start()
        with_retry(lambda: self.client.started(self.job_id, container.id), "report started")
        self.executor.start(container, self.assignment.spec)
        log.info("%s: running", self.job_id)
        return container

    def _hand_back(self, shipper: LogShipper, reason: str) -> None:
        """The daemon is shutting down: say so in the log and give the job back to the queue
        (a retryable failure, so another provider takes it at once)."""
        shipper.system("stopped: the provider is shutting down; handed back")
        shipper.close()
        self._report_failure(reason, retryable=True)

    def _report_pull(self, pull: PullProgress) -> None:
        """Tell the coordinator how the pull goes, at most once every PROGRESS_INTERVAL
        seconds. A cancel, or a 409/404 (the job is no longer ours), abandons the pull; a
        coordinator that cannot be reached, or fails on the report (a 500), only costs this
        one report."""
        if self._cancel.is_set():
            raise _PullAbandoned
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        try:
            self.client.progress(self.job_id, pull.snapshot())
        except (Unreachable, InternalServerError) as exc:
            log.warning("progress of %s not reported: %s", self.job_id, exc.message)

    def _follow(self, container: Container, shipper: LogShipper) -> Outcome:
        if self._reader is None:  # re-attached after a restart: replay, skipping what was sent
            self._reader = threading.Thread(
                target=_pump,
                args=(container, shipper, None),
                daemon=True,
                name=f"output-{self.job_id}",
            )
            self._reader.start()
        watch = DiskWatch(
            self.executor.disk_meter(container),
            self.assignment.spec.resources.disk_mb * MB,
            on_over=lambda _usage: self.executor.kill(container),
            interval=self.config.disk_check_seconds,
            name=f"disk-{self.job_id}",
        )
        watch.start()
        try:
            outcome = self.executor.wait(
                container, self.assignment.spec.max_duration_seconds, self._cancel.is_set
            )
        finally:
            watch.stop()
        if watch.over is None:  # a job that filled the disk and ended between two looks
            try:
                watch.check()
            except docker.errors.APIError as exc:
                log.warning("%s: last disk measurement failed: %s", self.job_id, exc)
        self.disk_over = watch.over
        self._reader.join(30)
        return outcome

    def _fail_over_disk(self, usage: DiskUsage, shipper: LogShipper) -> None:
        """The job wrote more than its ``resources.disk`` and was killed: it fails for good
        (another provider would stop it the same way), and its outputs are not uploaded."""
        reason = over_limit_reason(self.assignment.spec.resources.disk, usage)
        log.info("%s: killed: %s", self.job_id, reason)
        shipper.system(f"killed: {reason}")
        shipper.close()
        self._report_failure(reason, retryable=False)

    def _report(self, outcome: Outcome, shipper: LogShipper) -> None:
        spec = self.assignment.spec
        if outcome.oom_killed:
            shipper.system(f"killed: the job went over its memory limit of {spec.resources.memory}")
        if outcome.timed_out:
            shipper.system(f"stopped: over max_duration_seconds={spec.max_duration_seconds}")
        ended = f"exit code {outcome.exit_code} after {outcome.usage_seconds:.1f}s"
        shipper.system(ended)
        log.info("%s: %s", self.job_id, ended)
        job_dir = self.executor.job_dir(self.job_id)
        output_hash = output_digest = None
        output_size = None
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
            output_digest = packed.output_digest
        if not shipper.close():
            log.warning("some log lines of %s could not be delivered", self.job_id)
        claim = None
        if self.claims is not None:
            claim = self.claims.claim(
                self.assignment,
                outcome.exit_code,
                output_hash,
                outcome.usage_seconds,
                output_digest=output_digest,
            )
            log.info("%s: claiming %s for this run", self.job_id, from_micros(claim.amount_micros))
        report = ResultReport(
            exit_code=outcome.exit_code,
            usage_seconds=outcome.usage_seconds,
            output_hash=output_hash,
            output_size=output_size,
            output_digest=output_digest,
            claim=claim,
        )
        with_retry(lambda: self.client.report_result(self.job_id, report), "report result")
        log.info("%s: result reported", self.job_id)

    def _claim_cancelled_run(self, outcome: Outcome) -> None:
        """On-chain markets pay a cancelled run for the seconds it ran: send the signed claim
        (the developer gets the rest of the escrow back when it settles)."""
        assert self.claims is not None
        try:  # billing stopped at the cancel; the container ran until we saw it
            billed = with_retry(lambda: self.client.job(self.job_id), "read the billed amount").cost
        except GpumarketError as exc:
            log.warning("cannot claim cancelled %s: %s", self.job_id, exc.message)
            return
        if not billed:
            return
        claim = self.claims.claim(
            self.assignment, outcome.exit_code, None, outcome.usage_seconds, to_micros(billed)
        )
        report = ResultReport(
            exit_code=outcome.exit_code, usage_seconds=outcome.usage_seconds, claim=claim
        )
        try:
            with_retry(
                lambda: self.client.report_result(self.job_id, report), "claim a cancelled run"
            )
        except GpumarketError as exc:
            log.warning("the claim for cancelled %s was refused: %s", self.job_id, exc.message)

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


def _attach(container: Container) -> Any:
    """A raw socket on the container's output; attached before it starts, nothing is missed."""
    return container.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0})


def _pump(container: Container, shipper: LogShipper, sock: Any | None) -> None:
    """Copy the container's output from a raw attach socket, demultiplexing Docker's frames
    (8-byte header: stream, 3 zero bytes, big-endian size) and feeding whole reads at once.

    ``sock`` was attached before the container started, so nothing is missed, and a slow
    reader holds the container's writes back rather than losing them. A container found again
    after a restart (``sock`` None) is read from its saved log instead (attach does not replay
    reliably), skipping what was shipped before the restart."""
    skip = {"stdout": shipper.skip_for("stdout"), "stderr": shipper.skip_for("stderr")}
    if sock is None:
        _follow_saved_logs(container, shipper, skip)
        return
    buffer = bytearray()
    try:
        while True:
            data = docker.utils.socket.read(sock, 256 * 1024)
            if not data:
                break
            buffer += data
            pending: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
            order: list[str] = []
            while len(buffer) >= 8:
                size = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < 8 + size:
                    break
                name = "stderr" if buffer[0] == 2 else "stdout"
                payload = bytes(buffer[8 : 8 + size])
                del buffer[: 8 + size]
                if skip[name]:
                    cut = min(skip[name], len(payload))
                    payload, skip[name] = payload[cut:], skip[name] - cut
                if payload:
                    if not order or order[-1] != name:
                        if order:
                            shipper.feed(order[-1], b"".join(pending[order[-1]]))
                            pending[order[-1]].clear()
                        order.append(name)
                    pending[name].append(payload)
            if order:
                shipper.feed(order[-1], b"".join(pending[order[-1]]))
    except (OSError, docker.errors.APIError) as exc:
        log.warning("reading output of %s stopped: %s", container.name, exc)
    finally:
        sock.close()


def _follow_saved_logs(container: Container, shipper: LogShipper, skip: dict[str, int]) -> None:
    """Each stream from the start of the container's saved log, following until it exits."""

    def follow(name: str) -> None:
        left = skip[name]
        try:
            for data in container.logs(
                stdout=name == "stdout", stderr=name == "stderr", stream=True, follow=True
            ):
                if left:
                    cut = min(left, len(data))
                    data, left = data[cut:], left - cut
                if data:
                    shipper.feed(name, data)
        except docker.errors.APIError as exc:
            log.warning("reading %s of %s stopped: %s", name, container.name, exc)

    readers = [
        threading.Thread(target=follow, args=(name,), daemon=True) for name in ("stdout", "stderr")
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
