"""Content-addressed store for job outputs on the local disk.

Uploads stream to a temporary file while being hashed; the file is kept only when the hash
matches what the provider declared and the size is under the cap, and is then renamed to
``sha256/<first two hex>/<hex>`` so identical outputs are stored once. A provider's upload is
checked against its job before a byte is read and recorded on the job once stored.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import jobs, providers
from gpumarket.coordinator.services.auth import Principal
from gpumarket.errors import Conflict, IntegrityCheckFailed, InvalidRequest, LimitExceeded
from gpumarket.protocol import JobState, OutputUploadAck
from gpumarket.protocol.manifest import manifest_digest, manifest_of_archive

_UPLOAD_STATES = (JobState.ASSIGNED.value, JobState.RUNNING.value)


def parse_hash(output_hash: str) -> str:
    """``sha256:<64 hex>`` -> the hex digest, or InvalidRequest."""
    algo, _, digest = output_hash.partition(":")
    if algo != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidRequest("output hash must look like 'sha256:<64 lowercase hex digits>'")
    return digest


def check_upload(factory: sessionmaker[Session], principal: Principal, job_id: str) -> None:
    """Refuse an output upload before its body is read: the job must be the provider's and
    still ASSIGNED or RUNNING (once its result is in, the outputs it names are settled). Its
    own short transaction, so no connection is held while the archive streams."""
    with session_scope(factory) as session:
        job = jobs.get_visible(session, principal, job_id)
        if job.state not in _UPLOAD_STATES:
            raise Conflict(f"job {job_id} is {job.state}; outputs are no longer accepted")


def record_upload(
    factory: sessionmaker[Session],
    principal: Principal,
    job_id: str,
    output_hash: str,
    size: int,
    output_digest: str | None = None,
) -> OutputUploadAck:
    """Note stored outputs on the provider's job (locked; still the provider's own), so its
    result may name them and developers may download them."""
    with session_scope(factory) as session:
        job = providers.own_job_for_update(session, principal, job_id)
        job.output_hash = output_hash
        job.output_size = size
        job.output_digest = output_digest
        job.outputs_stored = True
    return OutputUploadAck(output_hash=output_hash, output_size=size, output_digest=output_digest)


def archive_digest(path: Path) -> str:
    """The canonical manifest digest of a stored archive: computed here, from the bytes, so the
    digest a result names (and runs are compared by) is the one anyone holding the archive
    gets. An archive with members no run writes (devices, hard links) is refused."""
    try:
        return manifest_digest(manifest_of_archive(path))
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise IntegrityCheckFailed(
            f"the uploaded outputs are not a readable archive of files, folders and links: {exc}"
        ) from exc


class ContentStore:
    """Files addressed by their SHA-256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, output_hash: str) -> Path:
        """Where the content with ``output_hash`` lives (it may not exist)."""
        digest = parse_hash(output_hash)
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, output_hash: str) -> bool:
        """Whether that content is stored."""
        return self.path_for(output_hash).is_file()

    async def put_stream(
        self, chunks: AsyncIterator[bytes], expected_hash: str, max_bytes: int
    ) -> int:
        """Store a streamed upload; returns its size. Nothing is kept on any error."""
        target = self.path_for(expected_hash)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise LimitExceeded(f"outputs are over the {max_bytes} byte cap")
                    digest.update(chunk)
                    out.write(chunk)
            actual = f"sha256:{digest.hexdigest()}"
            if actual != expected_hash:
                raise IntegrityCheckFailed(
                    f"uploaded content hashes to {actual}, not the declared {expected_hash}"
                )
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)  # noqa: ASYNC240 - one local unlink
            raise
        return size
