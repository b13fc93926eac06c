"""examples/manual_provider.py, the provider API spoken by hand, still works end to end."""

from __future__ import annotations

import sys
import tarfile
import threading
from pathlib import Path

import pytest
from eth_account import Account

from gpumarket.protocol import JobSpec, JobState, Role
from gpumarket.sdk import Client, register_wallet
from tests.integration.processes import CoordinatorProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.manual_provider import serve_one_job

pytestmark = pytest.mark.integration


def test_the_example_takes_runs_and_reports_a_job(
    coordinator: CoordinatorProcess, tmp_path: Path
) -> None:
    dev = Client(
        coordinator.url, register_wallet(coordinator.url, Account.create(), Role.DEVELOPER).api_key
    )
    job = dev.submit(
        JobSpec.model_validate(
            {"image": "python:3.12-slim", "env": {"MATRIX_SIZE": "24"}, "max_price_per_hour": "1"}
        )
    )
    worker = threading.Thread(target=serve_one_job, args=(coordinator.url, tmp_path))
    worker.start()
    worker.join(60)
    done = dev.get(job.id)
    assert done.state is JobState.COMMITTED and done.exit_code == 0
    assert "matmul 24x24" in "".join(line.data for line in dev.logs(job.id))
    with tarfile.open(dev.download_outputs(job.id, tmp_path / "o.tar.gz")) as tar:
        assert tar.getnames() == ["result.json"]
