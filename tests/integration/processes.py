"""Start and stop real coordinator processes for the integration suite and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

NO_RATE_LIMITS = {
    "GPUMARKET_RATE_LIMIT_AUTH": "",
    "GPUMARKET_RATE_LIMIT_MATCH": "",
    "GPUMARKET_RATE_LIMIT_SUBMIT": "",
}


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CoordinatorProcess:
    """``gpumarket coordinator serve`` running in a child process."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @classmethod
    def start(
        cls,
        db_url: str,
        data_dir: Path,
        admin_token: str,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> CoordinatorProcess:
        """Launch and wait until /healthz answers."""
        port = port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / f"coordinator-{port}.log"
        env = {
            **os.environ,
            "GPUMARKET_ADMIN_TOKEN": admin_token,
            "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.2",
            # suites and benchmarks sign in and submit far faster than any one client should;
            # the rate limits have tests of their own (tests/integration/test_hostile_input.py)
            **NO_RATE_LIMITS,
            # a drawn liveness re-run would be one more job in a test's market (tested on its
            # own, in tests/unit/coordinator/services/test_verification.py)
            "GPUMARKET_LIVENESS_SAMPLING": "0",
            **(extra_env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "gpumarket.cli",
            "coordinator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-url",
            db_url,
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        proc = cls(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
        proc.wait_ready(timeout)
        return proc

    def wait_ready(self, timeout: float) -> None:
        """Poll /healthz until it answers 200 or the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"coordinator exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"coordinator not ready in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
