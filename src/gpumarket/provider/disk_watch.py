"""Holding a running job to its ``resources.disk``: a watcher thread that measures what the job
has written and kills its container once it is over the limit.

Why a watcher and not a quota: Docker's ``--storage-opt size=`` works only on overlay2 over xfs
mounted with ``pquota`` (most hosts, ext4 among them, refuse it), a loop-mounted volume per job
needs root and a free loop device, and neither covers the bind-mounted output folder, which is a
plain folder on the provider's disk. Measuring works on every engine and filesystem: each few
seconds the watcher adds up, from the container's own inspect data,

- its writable bind mounts (the job's ``/outputs`` folder) and volumes (an image's ``VOLUME``,
  writable even under a read-only root): the blocks their files take, walked without following
  links and counting a hard-linked file once;
- its tmpfs mounts (``/tmp``): the space used, read through ``/proc/PID/root`` where the daemon
  may (as root); elsewhere the tmpfs's own size cap still bounds it;
- its writable layer (``SizeRw``), when its root filesystem is not read-only.

A job over its limit is killed at once (SIGKILL: there is no grace period to fill the disk
further) and fails for good with :func:`over_limit_reason`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

log = logging.getLogger(__name__)

MB = 1024 * 1024
DEFAULT_INTERVAL = 2.0
"""Seconds between two measurements of a job far from its limit."""
MIN_INTERVAL = 0.25
"""The shortest wait between two measurements, taken when a job writes towards its limit."""


@dataclass(frozen=True)
class DiskUsage:
    """Bytes a job has written, by where (``/outputs``, ``/tmp``, ``writable layer``...)."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Everything together: what the limit is checked against."""
        return sum(self.parts.values())

    def describe(self) -> str:
        """``"21.0MB in /outputs, 1.0MB in /tmp"``: where the job's bytes went, for its log."""
        parts = [(where, size) for where, size in self.parts.items() if size > 0]
        if not parts:
            return "nothing written"
        return ", ".join(f"{size / MB:.1f}MB in {where}" for where, size in parts)


def over_limit_reason(disk: str, usage: DiskUsage) -> str:
    """Why a job was stopped, in the developer's terms: the limit as they wrote it and how to
    raise it."""
    return (
        f"wrote more than the job's disk limit of {disk} ({usage.describe()}); "
        "ask for more with resources.disk"
    )


def tree_bytes(root: Path) -> int:
    """Disk space the files and folders under ``root`` take (allocated blocks, so a sparse file
    counts what it really holds), never following a link and counting a hard-linked file once.
    Entries that vanish while it walks are skipped; a missing ``root`` is 0."""
    seen: set[tuple[int, int]] = set()
    total = 0
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
                elif info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512
    return total


def _tmpfs_bytes(pid: int, target: str) -> int | None:
    """Space used on the tmpfs mounted at ``target`` inside the process ``pid``'s mount
    namespace; None where it cannot be read (the daemon is not root, the process ended) or
    the path is not a mount of its own (its statfs would be the root filesystem's)."""
    root = f"/proc/{pid}/root"
    mount = f"{root}{target}"
    try:
        if os.stat(mount).st_dev == os.stat(root).st_dev:
            return None
        fs = os.statvfs(mount)
    except OSError:
        return None
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize


class ContainerDisk:
    """What one container has written, measured from the places its inspect data names (see
    the module's docstring); a source the daemon cannot read is left out and logged once."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self.api = api
        self.container_id = container_id
        self._read_only: bool | None = None
        self._unreadable: set[str] = set()

    def _inspect(self) -> dict[str, Any]:
        # the SDK's inspect_container cannot ask for sizes; SizeRw walks the writable layer,
        # so it is asked for only when the root filesystem is writable
        params = {"size": 1} if self._read_only is False else {}
        url = self.api._url("/containers/{0}/json", self.container_id)
        data: dict[str, Any] = self.api._result(self.api._get(url, params=params), True)
        if self._read_only is None:
            self._read_only = bool(data.get("HostConfig", {}).get("ReadonlyRootfs"))
            if not self._read_only:
                return self._inspect()
        return data

    def measure(self) -> DiskUsage:
        """Bytes written now, by where; raises ``docker.errors.NotFound`` once the container is
        gone."""
        data = self._inspect()
        parts: dict[str, int] = {}
        volumes: dict[str, str] = {}
        for mount in data.get("Mounts") or []:
            if not mount.get("RW") or mount.get("Type") not in ("bind", "volume"):
                continue
            target, source = mount.get("Destination", "?"), mount.get("Source", "")
            if source and os.access(source, os.R_OK | os.X_OK):
                parts[target] = tree_bytes(Path(source))
            elif mount.get("Type") == "volume" and mount.get("Name"):
                volumes[mount["Name"]] = target
            else:
                self._say_unreadable(target, source)
        if volumes:
            parts.update(self._volume_bytes(volumes))
        pid = int(data.get("State", {}).get("Pid") or 0)
        host = data.get("HostConfig", {})
        tmpfs = list(host.get("Tmpfs") or {}) + [
            m.get("Target", "") for m in host.get("Mounts") or [] if m.get("Type") == "tmpfs"
        ]
        for target in tmpfs:
            used = _tmpfs_bytes(pid, target) if pid else None
            if used is not None:
                parts[target] = used
        if not self._read_only:
            parts["writable layer"] = int(data.get("SizeRw") or 0)
        return DiskUsage(parts)

    def _volume_bytes(self, volumes: dict[str, str]) -> dict[str, int]:
        """Volumes whose folder the daemon may not read (it is not root), as the engine sizes
        them (``docker system df``: slower, so only for jobs that have such a volume)."""
        try:
            listed = self.api.df().get("Volumes") or []
        except docker.errors.APIError as exc:
            self._say_unreadable(", ".join(volumes.values()), f"docker system df: {exc}")
            return {}
        sizes = {}
        for volume in listed:
            target = volumes.get(volume.get("Name", ""))
            size = (volume.get("UsageData") or {}).get("Size", -1)
            if target is not None and size >= 0:
                sizes[target] = int(size)
        return sizes

    def _say_unreadable(self, target: str, source: str) -> None:
        if target not in self._unreadable:
            self._unreadable.add(target)
            log.warning(
                "%s: cannot measure what it writes to %s (%s): not counted against its disk",
                self.container_id[:12],
                target,
                source or "no source",
            )


class DiskWatch(threading.Thread):
    """Measures a running job every ``interval`` seconds (more often as it nears its limit) and
    calls ``on_over`` once, with the usage, when it is over ``limit_bytes``; ``over`` keeps
    that usage. A measurement that fails is logged and tried again; the container being gone
    ends the watch."""

    def __init__(
        self,
        measure: Callable[[], DiskUsage],
        limit_bytes: int,
        on_over: Callable[[DiskUsage], None],
        interval: float = DEFAULT_INTERVAL,
        name: str = "disk-watch",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.measure = measure
        self.limit_bytes = limit_bytes
        self.on_over = on_over
        self.interval = interval
        self.over: DiskUsage | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        """Measure until stopped, the job is over its limit, or its container is gone."""
        previous: tuple[float, int] | None = None
        failing = False
        while not self._stopped.is_set():
            try:
                usage = self.check()
            except docker.errors.NotFound:
                return
            except Exception as exc:  # an engine hiccup: the next measurement may do
                if not failing:
                    log.warning("%s: disk measurement failed: %s", self.name, exc)
                failing = True
                self._stopped.wait(self.interval)
                continue
            failing = False
            if self.over is not None:
                return
            now = time.monotonic()
            self._stopped.wait(self._next_wait(previous, now, usage.total))
            previous = (now, usage.total)

    def check(self) -> DiskUsage:
        """One measurement; over the limit, it records ``over`` and calls ``on_over`` (once,
        however many threads check). Also used after the container has exited, to catch a job
        that filled the disk faster than the watch looked."""
        usage = self.measure()
        if usage.total > self.limit_bytes:
            with self._lock:
                first = self.over is None
                if first:
                    self.over = usage
            if first:
                self.on_over(usage)
        return usage

    def _next_wait(self, previous: tuple[float, int] | None, now: float, total: int) -> float:
        """The full interval, or sooner when the job is writing: half the time its last rate
        needs to reach the limit (at least ``MIN_INTERVAL``), so a steady writer is caught
        about when it crosses."""
        if previous is None:
            return min(self.interval, MIN_INTERVAL)
        then, before = previous
        rate = (total - before) / max(now - then, 1e-3)
        if rate <= 0:
            return self.interval
        left = (self.limit_bytes - total) / rate
        return max(MIN_INTERVAL, min(self.interval, left / 2))

    def stop(self) -> None:
        """End the watch and wait (a while) for a measurement in progress to finish."""
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            with contextlib.suppress(RuntimeError):
                self.join(30)
