"""How every command answers: a line for people, or JSON for scripts (``--json``).

One option and one printer, so ``--json`` means the same everywhere: an object (a wire model
as the API sends it, or a small dict of what the command did), never a table or prose."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from gpumarket.cli.consoles import console

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]


def emit(as_json: bool, data: BaseModel | Mapping[str, Any], text: str) -> None:
    """Print ``data`` as JSON when ``as_json``, else the one line ``text``."""
    if not as_json:
        console.print(text, highlight=False)
    elif isinstance(data, BaseModel):
        typer.echo(data.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(data, indent=2, default=str))


# wide enough for any listing: piped, a table takes the width it needs
_UNBOUNDED = 10_000


def print_listing(
    headers: Sequence[str], rows: Iterable[Sequence[str]], keys: Collection[str] = ("id",)
) -> None:
    """Print rows as a table for people. The ``keys`` columns hold what users copy into their
    next command (job and provider ids, GPU UUIDs), so they are never cut short: on a narrow
    terminal the other columns give way. Piped or redirected, nothing is cut: the table is as
    wide as its longest row. Cells are text, never rich markup (an image name may hold
    brackets)."""
    cells = [[Text(value) for value in row] for row in rows]
    columns = []
    for i, header in enumerate(headers):
        if header in keys:
            width = max([len(header), *(len(row[i]) for row in cells)])
            columns.append(Column(header, no_wrap=True, min_width=width))
        else:
            columns.append(Column(header))
    table = Table(*columns)
    for row in cells:
        table.add_row(*row)
    if console.is_terminal:
        console.print(table)
        return
    # a console of the table's own width (rich caps print's width at the console's)
    unbounded = Console(file=console.file, width=_UNBOUNDED)
    width = Measurement.get(unbounded, unbounded.options, table).maximum
    Console(file=console.file, width=width, soft_wrap=True).print(table)


def or_dash(value: object) -> str:
    """A table cell: the value, or "-" when there is none (a zero cost is 0, not missing)."""
    return "-" if value is None else str(value)
