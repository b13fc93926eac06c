"""The canonical output digest: the same files give the same digest and the same archive,
whatever their times, owners or the order they were written in; any change of content, path,
mode or type changes it; the digest read back from the archive is the one packing computed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from gpumarket.protocol.manifest import (
    ManifestEntry,
    entry_for,
    manifest_digest,
    manifest_of_archive,
)
from gpumarket.provider.outputs import pack_outputs


def _write_outputs(root: Path, order: list[str], mtime: int) -> Path:
    """The same three outputs, written in ``order`` and stamped ``mtime``."""
    contents = {"b.txt": b"beta\n", "sub/a.bin": bytes(range(256)), "sub/c.txt": b"gamma"}
    (root / "sub").mkdir(parents=True)
    for name in order:
        (root / name).write_bytes(contents[name])
    (root / "link").symlink_to("sub/c.txt")
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_two_runs_writing_the_same_files_at_different_times_agree(tmp_path: Path) -> None:
    first = _write_outputs(tmp_path / "run1", ["b.txt", "sub/a.bin", "sub/c.txt"], 1_000)
    second = _write_outputs(tmp_path / "run2", ["sub/c.txt", "b.txt", "sub/a.bin"], 2_000_000)
    one = pack_outputs(first, tmp_path / "one.tar.gz", max_bytes=1 << 20)
    two = pack_outputs(second, tmp_path / "two.tar.gz", max_bytes=1 << 20)
    assert one.output_digest == two.output_digest
    assert one.output_digest.startswith("sha256:") and len(one.output_digest) == 71
    # the archive itself is reproducible: sorted, zeroed times and owners, fixed gzip header
    assert one.digest == two.digest
    assert one.path.read_bytes() == two.path.read_bytes()
    with tarfile.open(one.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    with gzip.open(one.path) as stream:
        assert stream.read(512)  # a valid gzip stream


def test_the_digest_read_back_from_the_archive_is_the_packed_one(tmp_path: Path) -> None:
    out = _write_outputs(tmp_path / "run", ["b.txt", "sub/a.bin", "sub/c.txt"], 5)
    packed = pack_outputs(out, tmp_path / "o.tar.gz", max_bytes=1 << 20)
    entries = manifest_of_archive(packed.path)
    assert manifest_digest(entries) == packed.output_digest
    by_path = {e.path: e for e in entries}
    assert by_path["sub"].type == "dir" and by_path["link"].type == "symlink"
    assert by_path["sub/a.bin"].size == 256


def test_an_archive_made_another_way_with_the_same_files_has_the_same_digest(
    tmp_path: Path,
) -> None:
    """A non-reproducible archive (tarfile's defaults: real times, owners, another order)
    still yields the canonical digest: anyone holding any archive of the files can check it."""
    out = _write_outputs(tmp_path / "run", ["b.txt", "sub/a.bin", "sub/c.txt"], 77)
    packed = pack_outputs(out, tmp_path / "o.tar.gz", max_bytes=1 << 20)
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        for name in ["sub/c.txt", "link", "b.txt", "sub", "sub/a.bin"]:
            tar.add(out / name, arcname=name, recursive=False)
    assert manifest_digest(manifest_of_archive(other)) == packed.output_digest


@pytest.mark.parametrize("change", ["content", "path", "mode", "type", "extra"])
def test_any_real_change_changes_the_digest(tmp_path: Path, change: str) -> None:
    base = _write_outputs(tmp_path / "base", ["b.txt", "sub/a.bin", "sub/c.txt"], 1)
    changed = _write_outputs(tmp_path / "changed", ["b.txt", "sub/a.bin", "sub/c.txt"], 1)
    if change == "content":
        (changed / "b.txt").write_bytes(b"BETA\n")
    elif change == "path":
        (changed / "b.txt").rename(changed / "b2.txt")
    elif change == "mode":
        (changed / "b.txt").chmod(0o600)
    elif change == "type":
        (changed / "link").unlink()
        (changed / "link").write_bytes(b"sub/c.txt")
    else:
        (changed / "empty").mkdir()
    one = pack_outputs(base, tmp_path / "base.tar.gz", max_bytes=1 << 20)
    two = pack_outputs(changed, tmp_path / "changed.tar.gz", max_bytes=1 << 20)
    assert one.output_digest != two.output_digest


def test_the_manifest_order_and_the_format_version_are_fixed() -> None:
    a = ManifestEntry("a", "file", 0o644, 1, "0" * 64)
    b = ManifestEntry("b", "dir", 0o755, 0, "1" * 64)
    assert manifest_digest([a, b]) == manifest_digest([b, a])
    # pinned: a change of the canonical form would make old and new runs silently disagree
    # (version prefix, then [path, type, mode, size, sha256] rows as compact JSON)
    assert manifest_digest([a]) == (
        "sha256:16005573cbd593626e26005f31ee2cab14767f72309d9de63880b2b203bc8280"
    )


def test_devices_and_hard_links_are_not_outputs(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(ValueError, match="only files, directories and symbolic links"):
        entry_for(info)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        hard = tarfile.TarInfo("h")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "x"
        tar.addfile(hard)
    path = tmp_path / "hard.tar"
    path.write_bytes(data.getvalue())
    with pytest.raises(ValueError, match="only files, directories and symbolic links"):
        manifest_of_archive(path)
