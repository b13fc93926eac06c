"""``gpumarket coordinator ...``: run and maintain the coordinator service."""

from __future__ import annotations

import logging
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from gpumarket.cli.extras import require_extra
from gpumarket.cli.logsetup import (
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    configure_logging,
)

app = typer.Typer(help="Run the coordinator (REST API, matching, lifecycle).", no_args_is_help=True)


def _settings(**overrides: Any) -> Any:
    from gpumarket.coordinator.settings import load_settings

    return load_settings(**overrides)  # a wrong setting: a ConfigurationError, one line


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL [env GPUMARKET_DB_URL; default sqlite:///./gpumarket.db]."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where outputs are stored [env GPUMARKET_DATA_DIR].")
    ] = None,
    admin_token: Annotated[
        str | None, typer.Option(help="Operator credential [env GPUMARKET_ADMIN_TOKEN].")
    ] = None,
    challenge_window: Annotated[
        int | None,
        typer.Option(help="Challenge window in seconds [env GPUMARKET_CHALLENGE_WINDOW_SECONDS]."),
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Serve the REST API (OpenAPI at /docs); migrates the database first."""
    require_extra("coordinator", "the coordinator")
    configure_logging(log_level, log_format)
    # first: a misconfiguration is one line before anything is imported, opened or served
    settings = _settings(
        db_url=db_url,
        data_dir=data_dir,
        admin_token=admin_token,
        challenge_window_seconds=challenge_window,
    )
    import uvicorn

    from gpumarket.coordinator.app import create_app
    from gpumarket.coordinator.http.server import header_timeout_protocol

    if settings.auto_migrate:  # here rather than in the app, so a bad URL is one clear line
        _migrate_or_explain(settings.db_url, "head")
        settings = settings.model_copy(update={"auto_migrate": False})
    if settings.admin_token is None:
        logging.getLogger("gpumarket").warning(
            "no admin token set: admin endpoints are disabled (set GPUMARKET_ADMIN_TOKEN)"
        )
    app = create_app(settings)

    class _Server(uvicorn.Server):
        """uvicorn, telling the app as soon as it is asked to stop, so long-polls and log
        streams end at once rather than holding the graceful shutdown."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.shutting_down.set()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.value,
        # JSON: uvicorn's own records go through our handler too, not its text formatter
        log_config=None if log_format is LogFormat.JSON else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        # a connection that never finishes its headers is closed (uvicorn would wait forever)
        http=header_timeout_protocol(settings.header_timeout_seconds),
        # what still runs after this (a slow upload) is cut: a restart is never held for long
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    _Server(config).run()


@app.command()
def migrate(
    db_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env GPUMARKET_DB_URL].")
    ] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema (serve does this by itself unless auto_migrate is off)."""
    require_extra("coordinator", "the coordinator")
    settings = _settings(db_url=db_url)
    _migrate_or_explain(settings.db_url, revision)
    typer.echo(f"database at {revision}")


def _migrate_or_explain(db_url: str, revision: str) -> None:
    """Run migrations, turning a bad URL or an unreachable database into one clear error."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    from gpumarket.coordinator.db import migrate as migrations
    from gpumarket.errors import ConfigurationError, Unreachable

    try:
        migrations.upgrade(db_url, revision)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigurationError(
            f"--db-url {db_url!r} is not a database URL gpumarket can use ({exc}); use "
            "sqlite:///path.db or postgresql+psycopg://user:password@host/dbname"
        ) from exc
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        shown = make_url(db_url).render_as_string(hide_password=True)
        raise Unreachable(f"cannot open the database at {shown!r}: {reason}") from exc
