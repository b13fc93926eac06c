"""--log-format json: every record one JSON object, a traceback included in it; HTTP request
lines only at debug."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from gpumarket.cli.logsetup import JsonFormatter, LogFormat, LogLevel, configure_logging


def test_a_record_with_a_traceback_is_one_json_line() -> None:
    try:
        raise ValueError('bad "quote"\nand a newline')
    except ValueError:
        record = logging.LogRecord(
            "gpumarket.provider",
            logging.ERROR,
            __file__,
            1,
            "job %s failed",
            ("job_1",),
            sys.exc_info(),
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "gpumarket.provider"
    assert entry["message"] == "job job_1 failed"
    assert "ValueError" in entry["exception"] and entry["ts"].endswith("+00:00")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, was in chatty.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("restored_logging")
def test_http_request_lines_only_at_debug() -> None:
    configure_logging(LogLevel.INFO, LogFormat.TEXT)
    assert logging.getLogger("gpumarket.provider.runner").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    configure_logging(LogLevel.DEBUG, LogFormat.TEXT)
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
