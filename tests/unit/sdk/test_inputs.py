"""Local files and folders become the job's inline inputs, text as text and bytes as base64,
with what goes wrong said in terms of the local path."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gpumarket.errors import InvalidRequest
from gpumarket.sdk import local_inputs
from gpumarket.sdk.inputs import parse_input_option


def test_a_file_goes_under_its_own_name_or_the_one_given(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    [same] = local_inputs(script)
    assert (same.path, same.content, same.content_base64) == ("train.py", "print('hi')\n", None)
    [renamed] = local_inputs(script, "/code/main.py")
    assert renamed.path == "code/main.py"


def test_a_folder_sends_every_file_and_bytes_travel_as_base64(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "deep").mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n")
    blob = bytes(range(256))
    (data / "deep" / "b.bin").write_bytes(blob)
    files = {f.path: f for f in local_inputs(data)}
    assert sorted(files) == ["data/a.csv", "data/deep/b.bin"]
    assert files["data/a.csv"].content == "x,y\n"
    encoded = files["data/deep/b.bin"].content_base64
    assert encoded is not None and base64.b64decode(encoded) == blob
    assert [f.path for f in local_inputs(data, "ds")] == ["ds/a.csv", "ds/deep/b.bin"]


def test_what_cannot_be_sent_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no such file or folder"):
        local_inputs(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match="holds no files"):
        local_inputs(tmp_path / "empty")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidRequest, match=r"as /inputs/\.\./f: must be a relative path"):
        local_inputs(tmp_path / "f", "../f")


def test_the_option_reads_like_a_docker_volume(tmp_path: Path) -> None:
    assert parse_input_option("train.py") == (Path("train.py"), None)
    assert parse_input_option("data/x.csv:ds/x.csv") == (Path("data/x.csv"), "ds/x.csv")
    odd = tmp_path / "a:b"  # an existing path with a colon is a path
    odd.write_text("x")
    assert parse_input_option(str(odd)) == (odd, None)
    with pytest.raises(InvalidRequest, match="write LOCAL or LOCAL:NAME"):
        parse_input_option(":x")
