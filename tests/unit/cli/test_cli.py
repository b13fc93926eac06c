"""The console script: version, help, and errors as one line without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpumarket import __version__


def gpumarket(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpumarket.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_and_help() -> None:
    assert gpumarket("--version").stdout.strip() == f"gpumarket {__version__}"
    help_text = gpumarket("coordinator", "serve", "--help").stdout
    for flag in ("--host", "--port", "--db-url", "--admin-token", "--challenge-window"):
        assert flag in help_text
    # bracketed hints are text, not rich markup that would swallow them
    assert "[env GPUMARKET_DB_URL;" in help_text and "GPUMARKET_ADMIN_TOKEN" in help_text


def test_help_shows_flags_as_flags() -> None:
    """A flag takes no value, so its help names no type (typer 0.29 printed "<bool>")."""
    lines = gpumarket("job", "submit", "--help").stdout.splitlines()
    follow = next(line for line in lines if "--follow" in line)
    assert "Stream the log." in follow
    assert "bool" not in follow.lower()


def test_bad_database_url_is_one_clear_line() -> None:
    result = gpumarket("coordinator", "serve", "--db-url", "nosuchdb://x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "is not a database URL" in result.stderr and "sqlite:///" in result.stderr


def test_unreachable_database_hides_the_password() -> None:
    result = gpumarket(
        "coordinator", "migrate", "--db-url", "postgresql+psycopg://someone:s3cret@127.0.0.1:1/none"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot open the database" in result.stderr and "s3cret" not in result.stderr


def test_usage_errors_are_reported_by_the_cli() -> None:
    result = gpumarket("coordinator", "serve", "--port", "notaport")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--port" in result.stderr


def test_errors_keep_their_brackets(tmp_path: Path) -> None:
    """Error text comes from elsewhere (the OS, a YAML parser): "[Errno 2]" or a YAML line with
    "[x" is printed as it is, not taken for rich markup and dropped."""
    missing = gpumarket("job", "submit", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert "[Errno 2] No such file or directory" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("image: [x\n")
    unparsable = gpumarket("job", "submit", str(broken))
    assert unparsable.returncode == 1
    assert "image: [x" in unparsable.stderr and "Traceback" not in unparsable.stderr


def test_a_docker_engine_out_of_reach_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = gpumarket("provider", "benchmark", "--image", "python:3.12-slim")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot reach the Docker engine at unix://{tmp_path}/no-engine.sock" in result.stderr
