"""The canonical digest of a job's outputs: what two runs are compared by.

An output archive's own SHA-256 changes with every file time, owner, member order and gzip
header, so two honest runs of a deterministic job would never agree on it. The *manifest* keeps
only what the job wrote: for every entry its path, type, permission bits, size and the SHA-256
of its content (of its target, for a link), sorted by path. Its digest (``sha256:`` of the
manifest's canonical JSON, with a version prefix) is what a provider's signed claim names, what
a re-run is compared by, and what anyone holding the archive can recompute with
:func:`manifest_of_archive`.

This module depends only on the standard library, so the provider, the coordinator and the
SDK compute the digest with the same code.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

MANIFEST_VERSION = "gpumarket-manifest-v1"
"""Prefixed to the canonical JSON, so a later format can never collide with this one."""

EntryType = Literal["file", "dir", "symlink"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True, order=True)
class ManifestEntry:
    """One output entry as the digest sees it (sorted by ``path``, then the rest)."""

    path: str
    type: EntryType
    mode: int
    size: int
    sha256: str

    def as_row(self) -> list[object]:
        """The entry in the manifest's canonical JSON (a list, so key order cannot vary)."""
        return [self.path, self.type, self.mode, self.size, self.sha256]


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def entry_for(info: tarfile.TarInfo, content_sha256: str | None = None) -> ManifestEntry:
    """The manifest entry of archive member ``info``: a regular file needs its content's
    SHA-256; a directory has size 0 and the empty hash; a link is its target (hashed), with the
    fixed mode 0o777 since link permissions mean nothing on Linux."""
    path = info.name.removeprefix("./").rstrip("/")
    if info.issym():
        target = info.linkname.encode()
        return ManifestEntry(
            path, "symlink", 0o777, len(target), hashlib.sha256(target).hexdigest()
        )
    if info.isdir():
        return ManifestEntry(path, "dir", info.mode & 0o7777, 0, EMPTY_SHA256)
    if info.isfile():
        if content_sha256 is None:
            raise ValueError(f"{path}: a regular file's entry needs its content hash")
        return ManifestEntry(path, "file", info.mode & 0o7777, info.size, content_sha256)
    raise ValueError(f"{path}: only files, directories and symbolic links are outputs")


def manifest_digest(entries: list[ManifestEntry]) -> str:
    """``sha256:<hex>`` of the manifest: the same for the same files whatever the order they
    were listed in, their times, owners or how they were archived."""
    rows = [entry.as_row() for entry in sorted(entries)]
    canonical = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{MANIFEST_VERSION}\n{canonical}".encode())
    return f"sha256:{digest.hexdigest()}"


def _sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def manifest_of_archive(archive: Path) -> list[ManifestEntry]:
    """The manifest of an output archive (any tar, gzip or not), read once as a stream: what
    the coordinator checks an upload's claimed digest against, and what a developer checks a
    download by. Members that are not outputs (devices, hard links) raise ``ValueError``."""
    entries: list[ManifestEntry] = []
    with tarfile.open(archive, "r|*") as tar:
        for info in tar:
            if info.isfile():
                content = tar.extractfile(info)
                assert content is not None  # a regular file always has content
                entries.append(entry_for(info, _sha256_of(content)))
            else:
                entries.append(entry_for(info))
    return entries
