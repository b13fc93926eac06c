"""Shipping files from the developer's machine with a job (a script, a config, a small dataset).

A job spec carries small inputs inline (``InputFile.content`` or ``content_base64``, at most
``MAX_INLINE_INPUT_BYTES`` in all) and large ones by URL. This turns local files and folders into
the inline form, so ``train.py`` next to you becomes ``/inputs/train.py`` in the container."""

from __future__ import annotations

import base64
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from gpumarket.errors import InvalidRequest
from gpumarket.protocol import InputFile


def local_inputs(source: Path, name: str | None = None) -> list[InputFile]:
    """The inputs that place ``source`` under /inputs: a file at ``name`` (default: its own
    name), or every file in a folder at ``name/relative/path`` (default: the folder's name).
    Text files travel as text, anything else as base64; the spec's size cap still applies."""
    target = PurePosixPath(name.strip("/") if name else source.resolve().name)
    if source.is_file():
        return [_inline(source, target)]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        if not files:
            raise InvalidRequest(f"{source} holds no files to send")
        return [_inline(p, target / p.relative_to(source).as_posix()) for p in files]
    raise InvalidRequest(f"{source}: no such file or folder")


def parse_input_option(value: str) -> tuple[Path, str | None]:
    """``LOCAL`` or ``LOCAL:NAME`` (as ``docker run -v`` writes source:target): the local path,
    and where under /inputs it goes when given."""
    local, sep, name = value.rpartition(":")
    if not sep or Path(value).exists():
        return Path(value), None
    if not local or not name:
        raise InvalidRequest(f"--input {value!r}: write LOCAL or LOCAL:NAME (NAME under /inputs)")
    return Path(local), name


def _inline(path: Path, target: PurePosixPath) -> InputFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        if text is not None:
            return InputFile(path=str(target), content=text)
        return InputFile(path=str(target), content_base64=base64.b64encode(data).decode())
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"cannot send {path} as /inputs/{target}: {problem}") from exc
