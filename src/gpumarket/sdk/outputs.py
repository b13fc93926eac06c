"""Unpacking a job's output archive on the developer's machine.

The archive comes from a provider, so it is untrusted: it is unpacked with tarfile's ``data``
filter, which refuses members that would land outside the folder (absolute paths, ``..``,
links pointing out), device files and set-uid bits, instead of writing them."""

from __future__ import annotations

import tarfile
from pathlib import Path

from gpumarket.errors import IntegrityCheckFailed, InvalidRequest


def extract_outputs(archive: Path, folder: Path) -> list[Path]:
    """Unpack ``archive`` (a job's tar.gz, as ``Client.download_outputs`` saves it) into
    ``folder`` (created if needed) and return the files written, relative to it. Nothing of a
    refused archive is kept half-written: members are checked before any is extracted."""
    if not hasattr(tarfile, "data_filter"):
        raise InvalidRequest("unpacking outputs safely needs Python 3.11.4 or newer")
    if folder.exists() and not folder.is_dir():
        raise InvalidRequest(f"{folder} exists and is not a folder")
    try:
        with tarfile.open(archive, "r:*") as tar:
            # as extraction will write them (a leading "/" dropped), or the first refusal
            members = [tarfile.data_filter(m, str(folder)) for m in tar.getmembers()]
            folder.mkdir(parents=True, exist_ok=True)
            tar.extractall(folder, filter="data")
    except tarfile.FilterError as exc:
        raise IntegrityCheckFailed(f"refused to unpack {archive.name}: {exc}") from exc
    except (tarfile.ReadError, EOFError) as exc:
        raise IntegrityCheckFailed(f"{archive.name} is not a readable tar archive: {exc}") from exc
    return [Path(m.name) for m in members if m.isfile()]
