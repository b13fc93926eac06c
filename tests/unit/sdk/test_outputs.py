"""Output archives come from providers: unpacked only inside the folder, downloaded whole and
as the result names them, or not at all."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gpumarket.errors import IntegrityCheckFailed, InvalidRequest, Unreachable
from gpumarket.protocol.manifest import manifest_digest, manifest_of_archive
from gpumarket.sdk import Client, extract_outputs


def archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def regular(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_outputs_unpack_into_the_folder(tmp_path: Path) -> None:
    packed = archive(
        tmp_path / "out.tar.gz",
        [(regular("result.json"), b"{}"), (regular("plots/loss.csv"), b"1,2\n")],
    )
    files = extract_outputs(packed, tmp_path / "unpacked")
    assert sorted(files) == [Path("plots/loss.csv"), Path("result.json")]
    assert (tmp_path / "unpacked" / "plots" / "loss.csv").read_bytes() == b"1,2\n"


@pytest.mark.parametrize(
    "member",
    [
        (regular("../escape.txt"), b"x"),
        (regular("sub/../../escape.txt"), b"x"),
        (link("innocent", "/etc/passwd"), b""),
        (link("up", "../../.."), b""),
    ],
    ids=["dot-dot", "nested-dot-dot", "link-to-absolute", "link-up"],
)
def test_a_hostile_archive_writes_nothing(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes]
) -> None:
    packed = archive(tmp_path / "out.tar.gz", [(regular("fine.txt"), b"ok"), member])
    folder = tmp_path / "unpacked"
    with pytest.raises(IntegrityCheckFailed, match=r"refused to unpack out\.tar\.gz"):
        extract_outputs(packed, folder)
    assert not folder.exists()  # checked before anything was written, the fine file included
    assert not (tmp_path / "escape.txt").exists()


def test_an_absolute_path_lands_inside_the_folder(tmp_path: Path) -> None:
    packed = archive(tmp_path / "out.tar.gz", [(regular("/etc/cron.d/job"), b"x")])
    assert extract_outputs(packed, tmp_path / "unpacked") == [Path("etc/cron.d/job")]
    assert (tmp_path / "unpacked" / "etc" / "cron.d" / "job").read_bytes() == b"x"


def test_not_an_archive_or_not_a_folder(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(IntegrityCheckFailed, match="not a readable tar archive"):
        extract_outputs(junk, tmp_path / "unpacked")
    with pytest.raises(InvalidRequest, match="is not a folder"):
        extract_outputs(junk, junk)


class _DropsMidway(httpx.SyncByteStream):
    """A body that sends a chunk and then loses the connection."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"x" * 1024
        raise httpx.ReadError("connection reset by peer")


def test_an_interrupted_download_leaves_no_archive(tmp_path: Path) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, headers={"content-length": "4096"}, stream=_DropsMidway()
        )
    )
    dest = tmp_path / "job-outputs.tar.gz"
    with (
        Client("http://coordinator", "key", transport=transport) as sdk,
        pytest.raises(Unreachable, match="download interrupted"),
    ):
        sdk.download_outputs("job_1", dest)
    assert list(tmp_path.iterdir()) == []  # neither a truncated archive nor its .part


def test_a_download_whose_hash_differs_from_the_result_is_refused(tmp_path: Path) -> None:
    body = b"an archive"
    named = f"sha256:{hashlib.sha256(body).hexdigest()}"

    def serve(header: str) -> httpx.MockTransport:
        return httpx.MockTransport(
            lambda request: httpx.Response(200, headers={"x-content-sha256": header}, content=body)
        )

    dest = tmp_path / "job-outputs.tar.gz"
    with Client("http://coordinator", "key", transport=serve(named)) as sdk:
        assert sdk.download_outputs("job_1", dest).read_bytes() == body
    dest.unlink()
    other = "sha256:" + "0" * 64
    with (
        Client("http://coordinator", "key", transport=serve(other)) as sdk,
        pytest.raises(IntegrityCheckFailed, match=f"arrived damaged: their hash is {named}"),
    ):
        sdk.download_outputs("job_1", dest)
    assert list(tmp_path.iterdir()) == []


def test_a_download_holding_other_files_than_the_signed_digest_is_refused(
    tmp_path: Path,
) -> None:
    """The archive's own hash can match while its files are not the ones the provider's
    signed result names: the SDK recomputes the canonical digest from the bytes."""
    body = archive(tmp_path / "src.tar.gz", [(regular("a.txt"), b"alpha")]).read_bytes()
    named = f"sha256:{hashlib.sha256(body).hexdigest()}"
    right = manifest_digest(manifest_of_archive(tmp_path / "src.tar.gz"))
    (tmp_path / "src.tar.gz").unlink()

    def serve(digest: str) -> httpx.MockTransport:
        headers = {"x-content-sha256": named, "x-output-digest": digest}
        return httpx.MockTransport(
            lambda request: httpx.Response(200, headers=headers, content=body)
        )

    dest = tmp_path / "job-outputs.tar.gz"
    with Client("http://coordinator", "key", transport=serve(right)) as sdk:
        assert sdk.download_outputs("job_1", dest).read_bytes() == body
    dest.unlink()
    with (
        Client("http://coordinator", "key", transport=serve("sha256:" + "1" * 64)) as sdk,
        pytest.raises(IntegrityCheckFailed, match=f"digest is {right}, not the sha256:1111"),
    ):
        sdk.download_outputs("job_1", dest)
    assert list(tmp_path.iterdir()) == []
