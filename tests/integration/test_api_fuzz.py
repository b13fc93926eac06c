"""Property-based fuzz of the coordinator's whole API from its own OpenAPI document
(schemathesis), as every role, on SQLite and PostgreSQL: any 5xx, any status, media type,
header or body the document does not describe is a failure. Bounded in time per role."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.helpers import register
from tests.integration.processes import CoordinatorProcess

pytestmark = pytest.mark.integration

SECONDS_PER_ROLE = int(os.environ.get("GPUMARKET_FUZZ_SECONDS", "5"))
"""Each role's time budget; GPUMARKET_FUZZ_SECONDS=120 for a deeper run by hand."""
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def _schemathesis() -> list[str]:
    binary = Path(sys.executable).with_name("schemathesis")
    if not binary.exists():
        pytest.skip("schemathesis is not installed (make test installs the dev extras)")
    return [str(binary)]


def test_no_input_makes_the_api_answer_outside_its_document(
    coordinator: CoordinatorProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=coordinator.url, timeout=30) as http:
        developer, _ = register(http, "developer")
        provider, _ = register(http, "provider")
    failures = []
    for role, key in (
        ("anonymous", None),
        ("developer", developer),
        ("provider", provider),
        ("admin", ADMIN_TOKEN),
    ):
        command = [
            *_schemathesis(),
            "run",
            f"{coordinator.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-time",
            str(SECONDS_PER_ROLE),
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--request-timeout",
            "30",
            # a connection dropped by the client side is not an API fault: try it again
            "--request-retries",
            "2",
        ]
        if key:
            command += ["--header", f"Authorization: Bearer {key}"]
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=SECONDS_PER_ROLE + 120, cwd=tmp_path
        )
        if run.returncode != 0:
            failures.append(f"--- as {role} (exit {run.returncode}):\n{run.stdout[-6000:]}")
    assert coordinator.process.poll() is None, coordinator.log_path.read_text()[-4000:]
    assert not failures, "\n".join(failures)
