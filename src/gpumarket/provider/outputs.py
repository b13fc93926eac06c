"""Packing a job's /outputs into a size-capped, hashed tar.gz without following links out."""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


class OutputsTooLarge(Exception):
    """The outputs directory holds more than the cap allows."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"outputs hold {size} bytes, over the {cap} byte cap; not uploaded")
        self.size = size
        self.cap = cap


@dataclass
class PackedOutputs:
    """The archive, its ``sha256:`` hash, its size, and what was left out and why."""

    path: Path
    digest: str
    size: int
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
    with tarfile.open(archive, "w:gz") as tar:
        for path, relative in entries:
            tar.add(path, arcname=relative, recursive=False)
    digest = hashlib.sha256()
    with archive.open("rb") as data:
        for block in iter(lambda: data.read(1024 * 1024), b""):
            digest.update(block)
    return PackedOutputs(
        path=archive,
        digest=f"sha256:{digest.hexdigest()}",
        size=archive.stat().st_size,
        skipped=skipped,
    )
