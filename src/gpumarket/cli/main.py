"""Entry point of the ``gpumarket`` console script: errors become one line, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from gpumarket import __version__
from gpumarket.cli import coordinator
from gpumarket.errors import GpumarketError

err_console = Console(stderr=True)

typer_app = typer.Typer(
    name="gpumarket",
    help="A decentralized GPU compute marketplace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
typer_app.add_typer(coordinator.app, name="coordinator")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpumarket {__version__}")
        raise typer.Exit()


@typer_app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """gpumarket: submit GPU jobs, provide GPUs, operate the marketplace."""


def app() -> None:
    """Console-script entry: run the CLI, turning expected errors into one clear line."""
    try:
        typer_app(standalone_mode=False)
    except GpumarketError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
