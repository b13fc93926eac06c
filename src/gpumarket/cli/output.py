"""How every command answers: a line for people, or JSON for scripts (``--json``).

One option and one printer, so ``--json`` means the same everywhere: an object (a wire model
as the API sends it, or a small dict of what the command did), never a table or prose."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from gpumarket.cli.consoles import console

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]


def emit(as_json: bool, data: BaseModel | Mapping[str, Any], text: str) -> None:
    """Print ``data`` as JSON when ``as_json``, else the one line ``text``."""
    if not as_json:
        console.print(text, markup=False, highlight=False)
    elif isinstance(data, BaseModel):
        typer.echo(data.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(data, indent=2, default=str))
