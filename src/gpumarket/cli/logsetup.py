"""How the long-running commands (``coordinator serve``, ``provider run``) log: a text line
for a terminal, or one JSON object per line for a log pipeline (``--log-format json``)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer


class LogLevel(StrEnum):
    """The levels a daemon logs at (a typo is a usage error, not a traceback)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    """Text for people, JSON for Loki, Elasticsearch, CloudWatch and the like."""

    TEXT = "text"
    JSON = "json"


LogLevelOption = Annotated[
    LogLevel,
    typer.Option(metavar="LEVEL", help="Least severe level logged: debug, info, warning, error."),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        metavar="FORMAT",
        help="text, or json: one object per line (ts, level, logger, message).",
    ),
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY_LOGGERS = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: UTC timestamp, level, logger, message, and the traceback
    as one string when there is one (a multi-line trace never splits into several records)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: LogLevel, fmt: LogFormat) -> None:
    """Send every logger's records to stderr at ``level`` in ``fmt``; HTTP clients' request
    lines only at debug."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # a line per HTTP request (a provider's heartbeats and long-polls: ten a minute when idle)
    # would bury what the daemon does; they are detail for debugging
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.NOTSET if level is LogLevel.DEBUG else "WARNING")
