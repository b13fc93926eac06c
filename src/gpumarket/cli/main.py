"""Entry point of the ``gpumarket`` console script: errors become one line, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from gpumarket import __version__
from gpumarket.cli import admin, chain, coordinator, jobs, offers, provider, wallet
from gpumarket.cli.consoles import err_console
from gpumarket.errors import GpumarketError

typer_app = typer.Typer(
    name="gpumarket",
    help="A decentralized GPU compute marketplace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
typer_app.add_typer(coordinator.app, name="coordinator")
typer_app.add_typer(provider.app, name="provider")
typer_app.add_typer(wallet.app, name="wallet")
typer_app.add_typer(chain.app, name="chain")
typer_app.add_typer(jobs.app, name="job")
typer_app.add_typer(offers.app, name="offers")
typer_app.add_typer(admin.app, name="admin")
typer_app.command()(jobs.login)


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
    """Console-script entry: typer reports usage errors itself; gpumarket's own errors become
    one red line and exit status 1, never a traceback."""
    try:
        typer_app()
    except GpumarketError as exc:
        err_console.print(Text.assemble(("error:", "red"), " ", exc.message), highlight=False)
        sys.exit(1)
