"""`job submit` builds its spec from a YAML file and flags: local files named in either (a
`file:` input in the YAML, relative to it; `--input`) travel inline under /inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumarket.cli.jobs import _spec_from
from gpumarket.errors import InvalidRequest
from gpumarket.protocol import JobSpec


def spec_of(spec_file: Path | None, inputs: list[str] | None = None) -> JobSpec:
    flags = dict.fromkeys(
        ("image", "command", "gpu", "cpu", "memory", "max_price", "max_duration", "region"), None
    )
    return _spec_from(spec_file, **flags, env=None, name=None, network=False, inputs=inputs)


def test_yaml_file_inputs_are_read_next_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(
        "image: python:3.12-slim\nmax_price_per_hour: '1'\ninputs:\n"
        "  - {file: train.py, path: code/train.py}\n  - {path: note.txt, content: hi}\n"
    )
    other = tmp_path / "elsewhere.txt"
    other.write_text("x")
    spec = spec_of(spec_file, [f"{other}:extra.txt"])
    assert [(i.path, i.content) for i in spec.inputs] == [
        ("code/train.py", "print(1)\n"),
        ("note.txt", "hi"),
        ("extra.txt", "x"),
    ]


def test_a_file_input_with_other_fields_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(
        "image: busybox\nmax_price_per_hour: '1'\ninputs: [{file: a.txt, content: y}]\n"
    )
    with pytest.raises(InvalidRequest, match="a file entry takes only file and path, not content"):
        spec_of(spec_file)
