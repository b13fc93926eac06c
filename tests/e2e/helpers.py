"""Running the ``gpumarket`` CLI as a user would: a child process with its own home folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(
    home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``gpumarket ARGS`` with ``GPUMARKET_HOME=home``; ``check`` asserts exit code 0."""
    full_env = {
        **os.environ,
        "GPUMARKET_HOME": str(home),
        "GPUMARKET_WALLET_PASSWORD": "pw",
        "COLUMNS": "200",
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-m", "gpumarket.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result
