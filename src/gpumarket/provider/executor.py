"""Running one job in a locked-down Docker container (the docker SDK over the local engine).

Every container gets, unless the job asked for network and the owner allows it: no network;
a read-only root filesystem with a writable output directory and a size-capped tmpfs /tmp; all
capabilities dropped and no-new-privileges; memory, CPU and pids limits from the job's
resources; exactly the assigned GPUs (by UUID) as device requests; the job's inputs read-only at
/inputs; a bounded json-file log; and labels naming the job, so a restarted daemon finds it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
from docker.models.containers import Container
from docker.types import DeviceRequest, Mount
from docker.utils import parse_repository_tag

from gpumarket.errors import GpumarketError
from gpumarket.protocol import Assignment, JobSpec
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.disk_watch import ContainerDisk, DiskUsage
from gpumarket.provider.pulls import PullFailed, PullProgress

log = logging.getLogger(__name__)

LABEL_JOB = "gpumarket.job"
LABEL_PROVIDER = "gpumarket.provider"
PIDS_LIMIT = 512
JOB_DIR_NAME = re.compile(r"job_[0-9a-f]{8,32}")
"""A job's work folder is named after its id (``job_`` and hex, as the coordinator makes them)."""
INPUT_DOWNLOAD_CAP = 1024 * 1024 * 1024


# why a container's command could not be executed: as the engine says it when it refuses to
# start the container (``exec: "python": executable file not found in $PATH``), or as the
# container's init says it on stderr before exiting 127 or 126 (``[FATAL tini (7)] exec python
# failed: No such file or directory``); the cases `docker run` maps to its exit codes 127, 126
_ENGINE_EXEC = re.compile(r'exec: "(?P<command>[^"]*)"(?P<why>.*)', re.DOTALL)
_INIT_EXEC = re.compile(r"\[FATAL tini \(\d+\)\] exec (?P<command>.+?) failed: (?P<why>.*)")
_EXEC_PROBLEMS = (
    ("executable file not found", "{command} is not on the image's PATH"),
    ("no such file or directory", "{command} does not exist in the image"),
    ("not a directory", "{command} does not exist in the image"),
    ("permission denied", "{command} is not an executable file"),
)


def _exec_problem(message: str) -> str | None:
    """What to tell the developer when ``message`` (the engine's refusal, or the init's last
    words) says the command could not be executed; None for anything else."""
    named = _ENGINE_EXEC.search(message) or _INIT_EXEC.search(message)
    if named is None:
        return None
    command, why = named["command"], named["why"].lower()
    if "no such file" in why and "/" not in command:  # a bare name is looked up on PATH
        why = "executable file not found"
    for needle, problem in _EXEC_PROBLEMS:
        if needle in why:
            return problem.format(command=repr(command))
    return None


def pull_reference(image: str) -> tuple[str, str]:
    """``image`` as the engine's pull API takes it: the repository, and the tag or digest.
    Split as the docker SDK splits it (a digest after ``@``; a tag after the last ``:`` unless
    that colon is a registry's port), so ``python@sha256:<hex>`` pulls that digest rather than
    a repository named ``python@sha256``; no tag means ``latest``, as with ``docker pull``."""
    repository, tag = parse_repository_tag(image)
    return repository, tag or "latest"


class DockerUnavailable(GpumarketError):
    """The provider's Docker engine cannot be reached: nothing can run until it can."""

    code = "docker_unavailable"


def docker_client() -> docker.DockerClient:
    """The local engine's client, as ``DOCKER_HOST`` (default: the unix socket) says; an engine
    that is down or out of reach is one clear error, not the SDK's chained traceback."""
    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise DockerUnavailable(
            f"cannot reach the Docker engine at {where}: is it running, and may this user use "
            f"it (root, or the docker group)? ({exc})"
        ) from exc


class JobRefused(Exception):
    """The job cannot run here for a reason that another provider may not have."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class Outcome:
    """How a container ended."""

    exit_code: int
    usage_seconds: float
    oom_killed: bool = False
    timed_out: bool = False
    cancelled: bool = False


def container_name(job_id: str) -> str:
    """Deterministic name: a second container for the same job cannot be created."""
    return f"gpumarket-{job_id}"


class DockerExecutor:
    """The Docker side of a job: image, container, limits, waiting, cleanup."""

    def __init__(
        self,
        config: ProviderConfig,
        client: docker.DockerClient | None = None,
        provider_id: str = "unregistered",
    ) -> None:
        self.config = config
        self.docker = client or docker_client()
        self.provider_id = provider_id

    def engine_problem(self) -> str | None:
        """None while the engine answers; otherwise why not (it stopped, its socket went away),
        so the daemon stops taking jobs it could only fail."""
        try:
            self.docker.ping()
        except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
            return str(exc) or type(exc).__name__
        return None

    # ------------------------------------------------------------ preparation

    def job_dir(self, job_id: str) -> Path:
        """The job's work folder (inputs, outputs, state, archive)."""
        return self.config.work_dir / job_id

    def ensure_image(
        self,
        image: str,
        say: Callable[[str], None],
        on_progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """Refuse images outside the policy; pull the image when it is not here yet, saying
        so in the job's log and handing ``on_progress`` the pull's running totals after each
        engine event (it snapshots them only when it reports; it may raise to abandon the
        pull)."""
        if not self.config.image_allowed(image):
            raise JobRefused(
                f"image {image!r} is not allowed by this provider's image policy", retryable=True
            )
        try:
            self.docker.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        say(f"pulling image {image}\n")
        repository, tag = pull_reference(image)
        pull = PullProgress(image)
        try:
            for event in self.docker.api.pull(repository, tag=tag, stream=True, decode=True):
                pull.feed(event)
                if on_progress is not None:
                    on_progress(pull)
        except (docker.errors.APIError, PullFailed) as exc:
            reason = exc.explanation if isinstance(exc, docker.errors.APIError) else str(exc)
            raise JobRefused(
                f"cannot pull image {image!r}: {reason or exc}", retryable=False
            ) from exc
        done = pull.snapshot()
        say(f"pulled {image} ({done.done_bytes} bytes in {len(pull.layers)} new layers)\n")

    def write_inputs(self, spec: JobSpec, inputs_dir: Path) -> None:
        """Materialise inline inputs and fetch URL inputs (hash-checked) into ``inputs_dir``."""
        inputs_dir.mkdir(parents=True, exist_ok=True)
        for item in spec.inputs:
            target = inputs_dir / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.content is not None:
                target.write_text(item.content)
            elif item.content_base64 is not None:
                target.write_bytes(base64.b64decode(item.content_base64))
            elif item.url is not None:
                self._download(str(item.url), target, item.sha256)

    @staticmethod
    def _download(url: str, target: Path, sha256: str | None) -> None:
        digest = hashlib.sha256()
        size = 0
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                with target.open("wb") as out:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > INPUT_DOWNLOAD_CAP:
                            raise JobRefused(
                                f"input {url} is over {INPUT_DOWNLOAD_CAP} bytes", retryable=False
                            )
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise JobRefused(f"cannot fetch input {url}: {exc}", retryable=True) from exc
        if sha256 and digest.hexdigest() != sha256:
            raise JobRefused(f"input {url} does not match its sha256", retryable=False)

    # ------------------------------------------------------------ container

    def create(self, assignment: Assignment) -> Container:
        """Create (not start) the job's container with every security default applied."""
        spec = assignment.spec
        resources = spec.resources
        work = self.job_dir(assignment.job_id)
        outputs = work / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        outputs.chmod(0o777)  # whatever user the image runs as may write its results
        inputs = work / "inputs"
        self.write_inputs(spec, inputs)
        network = spec.network and self.config.allow_network
        if spec.network and not self.config.allow_network:
            raise JobRefused(
                "the job asks for network access and this provider does not allow it",
                retryable=True,
            )
        mounts = [
            Mount(target=spec.output_path, source=str(outputs), type="bind", read_only=False),
            Mount(target="/inputs", source=str(inputs), type="bind", read_only=True),
        ]
        device_requests = (
            [
                DeviceRequest(
                    driver="nvidia", device_ids=list(assignment.gpu_uuids), capabilities=[["gpu"]]
                )
            ]
            if assignment.gpu_uuids
            else []
        )
        options: dict[str, Any] = {
            "image": spec.image,
            "command": spec.command,
            "environment": dict(spec.env),
            "working_dir": spec.working_dir,
            "name": container_name(assignment.job_id),
            "labels": {
                **self.config.container_labels,
                LABEL_JOB: assignment.job_id,
                LABEL_PROVIDER: self.provider_id,
            },
            "network_mode": "bridge" if network else "none",
            "read_only": True,
            # /tmp is scratch space too: never bigger than the job's disk limit
            "tmpfs": {"/tmp": f"rw,noexec,nosuid,size={self.tmp_size_mb(spec)}m"},
            "mounts": mounts,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": f"{resources.memory_mb}m",
            "memswap_limit": f"{resources.memory_mb}m",
            "nano_cpus": int(resources.cpu * 1e9),
            "pids_limit": PIDS_LIMIT,
            "device_requests": device_requests,
            # the "local" driver keeps a bounded, compressed copy a restarted daemon can replay,
            # and is the fastest driver that keeps one (json-file is ~15% slower here)
            "log_config": {"type": "local", "config": {"max-size": "20m", "max-file": "2"}},
            # a minimal init (Docker's tini) as PID 1: the job's command gets the SIGTERM of a
            # cancel or a time limit (PID 1 would ignore it and run on until the SIGKILL), and
            # the processes it leaves behind are reaped
            "init": True,
            "detach": True,
        }
        try:
            return self.docker.containers.create(**options)
        except docker.errors.ImageNotFound as exc:
            raise JobRefused(f"image {spec.image!r} is not available", retryable=False) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # already created by an earlier run of this daemon
                return self.docker.containers.get(container_name(assignment.job_id))
            raise JobRefused(
                f"docker refused the container: {exc.explanation or exc}", retryable=True
            ) from exc

    @staticmethod
    def start(container: Container, spec: JobSpec) -> None:
        """Start a created container. A command the image cannot run (not found, not
        executable) is the job's error, not this provider's: refused for good, as `docker run`
        would exit 127 or 126, rather than sent to another provider that would fail the same."""
        try:
            container.start()
        except docker.errors.APIError as exc:
            problem = _exec_problem(str(exc.explanation or exc))
            if problem is None:
                raise
            raise JobRefused(
                f"the command cannot start in image {spec.image!r}: {problem}", retryable=False
            ) from exc

    @staticmethod
    def exec_failure(container: Container, outcome: Outcome, spec: JobSpec) -> JobRefused | None:
        """A run that ended 127 or 126 at once because its init could not execute the command
        (not on PATH, not a file, not executable): the job's error, refused for good as
        :meth:`start` refuses it, rather than a result the developer pays for."""
        if outcome.exit_code not in (126, 127) or outcome.cancelled or outcome.timed_out:
            return None
        try:
            last_words = container.logs(stdout=False, stderr=True, tail=5).decode(errors="replace")
        except docker.errors.APIError:
            return None
        problem = _exec_problem(last_words)
        if problem is None:
            return None
        return JobRefused(
            f"the command cannot start in image {spec.image!r}: {problem}", retryable=False
        )

    def wait(
        self, container: Container, timeout_seconds: float, cancelled: Callable[[], bool]
    ) -> Outcome:
        """Wait for the container to exit, stopping it (SIGTERM, then SIGKILL after the grace
        period) when its time is up or the job is cancelled."""
        started = time.monotonic()
        deadline = started + timeout_seconds
        timed_out = was_cancelled = False
        while True:
            try:
                result = container.wait(timeout=1)
                break
            except (docker.errors.APIError, httpx.HTTPError, OSError, Exception) as exc:
                if not _is_timeout(exc):
                    raise
            if cancelled():
                was_cancelled = True
                self.stop(container)
            elif time.monotonic() > deadline and not timed_out:
                timed_out = True
                self.stop(container)
        container.reload()
        state = container.attrs.get("State", {})
        return Outcome(
            exit_code=int(result.get("StatusCode", state.get("ExitCode", -1))),
            usage_seconds=_run_seconds(state) or (time.monotonic() - started),
            oom_killed=bool(state.get("OOMKilled")),
            timed_out=timed_out,
            cancelled=was_cancelled,
        )

    def tmp_size_mb(self, spec: JobSpec) -> int:
        """The size of the job's tmpfs /tmp: the owner's ``tmp_size_mb``, or the job's disk
        limit when that is smaller (what it writes there counts against that limit)."""
        return max(1, min(self.config.tmp_size_mb, spec.resources.disk_mb))

    def disk_meter(self, container: Container) -> Callable[[], DiskUsage]:
        """What measures the bytes the container has written, for its job's disk watch."""
        return ContainerDisk(self.docker.api, container.id).measure

    @staticmethod
    def kill(container: Container) -> None:
        """SIGKILL at once, no grace period: for a job over its disk limit, which a grace
        period would let write on. A container that already ended is left as it is."""
        try:
            container.kill()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: it is not running
                raise

    def stop(self, container: Container) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_seconds``."""
        with contextlib.suppress(docker.errors.NotFound):
            container.stop(timeout=int(self.config.stop_grace_seconds))

    def remove(self, job_id: str, keep_work: bool = False) -> None:
        """Remove the job's container and (unless asked to keep it) its work folder."""
        with contextlib.suppress(docker.errors.NotFound):
            self.docker.containers.get(container_name(job_id)).remove(force=True, v=True)
        if not keep_work:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def remove_stale_work(self, keep: set[str]) -> list[str]:
        """Remove the work folders of jobs other than ``keep`` (those of jobs that ended while
        the daemon was down, or whose results were kept when the coordinator could not be
        reached); returns their job ids. Only folders named like a job id are touched."""
        removed = []
        try:
            entries = list(self.config.work_dir.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.is_dir() and JOB_DIR_NAME.fullmatch(entry.name) and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def labelled_containers(self) -> list[Container]:
        """Containers this provider started (running or not), found by label."""
        return list(
            self.docker.containers.list(
                all=True, filters={"label": f"{LABEL_PROVIDER}={self.provider_id}"}
            )
        )


def _is_timeout(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "timeout" in text or "timed out" in text


def _parse_docker_time(text: str) -> datetime:
    """Docker's RFC 3339 times carry nanoseconds; Python takes microseconds."""
    main, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(fraction + '000000')[:6]}+00:00")


def _run_seconds(state: dict[str, Any]) -> float | None:
    started, finished = state.get("StartedAt"), state.get("FinishedAt")
    if not started or not finished or finished.startswith("0001"):
        return None
    try:
        return max(
            0.0, (_parse_docker_time(finished) - _parse_docker_time(started)).total_seconds()
        )
    except ValueError:
        return None
