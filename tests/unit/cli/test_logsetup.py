"""--log-format json: every record one JSON object, a traceback included in it."""

from __future__ import annotations

import json
import logging
import sys

from gpumarket.cli.logsetup import JsonFormatter


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
