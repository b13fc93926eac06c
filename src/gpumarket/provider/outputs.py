"""Packing a job's /outputs into a size-capped, hashed, reproducible tar.gz without following
links out.

The archive is reproducible (entries sorted by path, times, owners and the gzip header zeroed),
and its canonical manifest digest (:mod:`gpumarket.protocol.manifest`) is computed from the
same bytes as they are archived: two runs that write the same files give the same archive and
the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gpumarket.protocol.manifest import ManifestEntry, entry_for, manifest_digest


class OutputsTooLarge(Exception):
    """The outputs directory holds more than the cap allows."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"outputs hold {size} bytes, over the {cap} byte cap; not uploaded")
        self.size = size
        self.cap = cap


@dataclass
class PackedOutputs:
    """The archive, its ``sha256:`` hash, its size, the canonical digest of what it holds
    (what the signed claim names and runs are compared by), and what was left out and why."""

    path: Path
    digest: str
    size: int
    output_digest: str = ""
    skipped: list[str] = field(default_factory=list)


def _inside(root: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def pack_outputs(source: Path, archive: Path, max_bytes: int) -> PackedOutputs:
    """Archive regular files and directories under ``source``; a symlink is stored as a link only
    when it points inside ``source`` (it is never followed), and devices, FIFOs and sockets are
    skipped. Raises :class:`OutputsTooLarge` before writing when the files exceed ``max_bytes``."""
    entries: list[tuple[Path, str]] = []
    skipped: list[str] = []
    total = 0
    for directory, dirnames, filenames in os.walk(source, followlinks=False):
        base = Path(directory)
        for name in sorted(dirnames) + sorted(filenames):
            path = base / name
            relative = str(path.relative_to(source))
            if path.is_symlink():
                target = Path(os.readlink(path))
                resolved = target if target.is_absolute() else path.parent / target
                if not _inside(source, resolved):
                    skipped.append(f"{relative} (link to {target} outside the outputs)")
                    continue
                entries.append((path, relative))
            elif path.is_dir():
                entries.append((path, relative))
            elif path.is_file():
                total += path.stat().st_size
                if total > max_bytes:
                    raise OutputsTooLarge(total, max_bytes)
                entries.append((path, relative))
            else:
                skipped.append(f"{relative} (not a regular file)")
    archive.parent.mkdir(parents=True, exist_ok=True)
    manifest: list[ManifestEntry] = []
    entries.sort(key=lambda entry: entry[1])
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, relative in entries:
            info = _normalized(tar.gettarinfo(str(path), arcname=relative))
            if info.isfile():
                with path.open("rb") as content:
                    hashing = _HashingReader(content)
                    tar.addfile(info, hashing)
                manifest.append(entry_for(info, hashing.hexdigest()))
            else:
                tar.addfile(info)
                manifest.append(entry_for(info))
    digest = hashlib.sha256()
    with archive.open("rb") as data:
        for block in iter(lambda: data.read(1024 * 1024), b""):
            digest.update(block)
    return PackedOutputs(
        path=archive,
        digest=f"sha256:{digest.hexdigest()}",
        size=archive.stat().st_size,
        output_digest=manifest_digest(manifest),
        skipped=skipped,
    )


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``info`` with everything a rerun would change zeroed: times, owners, their names."""
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.pax_headers = {}
    return info


class _HashingReader:
    """A file wrapper that hashes what tarfile reads from it, so each output is read once."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read from the file and add the bytes to the hash."""
        block = self._inner.read(size)
        self._digest.update(block)
        return block

    def hexdigest(self) -> str:
        """The SHA-256 of everything read so far."""
        return self._digest.hexdigest()
