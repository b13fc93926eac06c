"""The coordinator over real HTTP (uvicorn in a child process), through the SDK, on SQLite and
PostgreSQL: the flow a newcomer follows in the README."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gpumarket.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from gpumarket.protocol import (
    JobSpec,
    JobState,
    LogAppend,
    LogChunk,
    ResultReport,
    Role,
)
from gpumarket.sdk import AdminClient, Client, ProviderClient, extract_outputs, register_wallet
from tests.conftest import ADMIN_TOKEN
from tests.helpers import RTX4090, gpus, heartbeat, new_wallet
from tests.integration.processes import CoordinatorProcess

pytestmark = pytest.mark.integration


def _outputs_archive(tmp_path: Path) -> tuple[Path, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"result: 42\n"
        info = tarfile.TarInfo("result.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "outputs.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path, "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()


def _wait_for(predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_newcomer_flow_over_http(coordinator: CoordinatorProcess, tmp_path: Path) -> None:
    dev_cred = register_wallet(coordinator.url, new_wallet(), Role.DEVELOPER)
    dev = Client(coordinator.url, dev_cred.api_key)
    spec = JobSpec.model_validate(
        {
            "image": "python:3.12-slim",
            "command": ["python", "-c", "print(42)"],
            "max_price_per_hour": "2.00",
            "resources": {"gpu": "RTX4090:24GB..:1"},
        }
    )
    job = dev.submit(spec)
    assert job.state is JobState.QUEUED
    queued = dev.get(job.id)
    assert queued.why_no_match is not None and queued.why_no_match.matches == []

    prov_cred = register_wallet(coordinator.url, new_wallet(), Role.PROVIDER, region="eu")
    prov = ProviderClient(coordinator.url, prov_cred.api_key)
    # an expensive provider first: the explanation must name the price
    prov.heartbeat(heartbeat(gpus(RTX4090, 1), {"RTX4090": "3.50"}, region="eu"))
    explained = _wait_for(lambda: dev.get(job.id).why_no_match or None)
    assert explained.rejections and explained.rejections[0].misses[0].constraint == "price"

    # the long-poll is waiting when the price drops: it must wake with the assignment
    got: list[str] = []
    poller = threading.Thread(target=lambda: got.extend(a.job_id for a in prov.poll(wait=20)))
    poller.start()
    prov.heartbeat(heartbeat(gpus(RTX4090, 1), {"RTX4090": "1.80"}, region="eu"))
    poller.join(25)
    assert got == [job.id]
    assert dev.get(job.id).state is JobState.ASSIGNED

    prov.started(job.id)
    follower_lines: list[str] = []
    follower = threading.Thread(
        target=lambda: follower_lines.extend(line.data for line in dev.follow_logs(job.id))
    )
    follower.start()
    for seq in range(5):
        prov.append_logs(job.id, LogAppend(chunks=[LogChunk(seq=seq, data=f"line {seq}\n")]))
        time.sleep(0.05)
    archive, digest = _outputs_archive(tmp_path)
    prov.upload_outputs(job.id, archive, digest)
    done = prov.report_result(
        job.id,
        ResultReport(
            exit_code=0, usage_seconds=1.0, output_hash=digest, output_size=archive.stat().st_size
        ),
    )
    assert done.state is JobState.COMMITTED
    follower.join(15)
    assert follower_lines == [f"line {i}\n" for i in range(5)]

    downloaded = dev.download_outputs(job.id, tmp_path / "got.tar.gz")
    assert downloaded.read_bytes() == archive.read_bytes()
    with tarfile.open(downloaded) as tar:
        member = tar.extractfile("result.txt")
        assert member is not None and member.read() == b"result: 42\n"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []
    unpacked = extract_outputs(downloaded, tmp_path / "unpacked")
    assert unpacked == [Path("result.txt")]
    assert (tmp_path / "unpacked" / "result.txt").read_bytes() == b"result: 42\n"
    states = [e.to_state for e in dev.events(job.id)]
    assert states == [
        JobState.SUBMITTED,
        JobState.QUEUED,
        JobState.ASSIGNED,
        JobState.RUNNING,
        JobState.COMMITTED,
    ]

    admin = AdminClient(coordinator.url, ADMIN_TOKEN)
    stats = admin.stats()
    assert stats.jobs_by_state["COMMITTED"] == 1
    assert stats.providers_online == 1
    assert httpx.get(f"{coordinator.url}/metrics").status_code == 401  # operator figures
    metrics = httpx.get(
        f"{coordinator.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).text
    assert 'gpumarket_jobs{state="COMMITTED"} 1.0' in metrics


def test_credentials_and_visibility_over_http(coordinator: CoordinatorProcess) -> None:
    alice = Client(
        coordinator.url, register_wallet(coordinator.url, new_wallet(), Role.DEVELOPER).api_key
    )
    bob = Client(
        coordinator.url, register_wallet(coordinator.url, new_wallet(), Role.DEVELOPER).api_key
    )
    job = alice.submit(JobSpec(image="busybox", max_price_per_hour="1"))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        bob.get(job.id)
    with pytest.raises(AuthenticationFailed):
        Client(coordinator.url, "gmk_dev_not-a-key").get(job.id)
    with pytest.raises(PermissionDenied):
        AdminClient(coordinator.url, alice._http.headers["Authorization"][7:]).stats()
    bad = httpx.post(
        f"{coordinator.url}/v1/jobs",
        json={"image": "", "max_price_per_hour": "1", "resources": {"gpu": {"count": -1}}},
        headers=alice._http.headers,
    )
    assert bad.status_code == 422
    assert "image" in bad.json()["detail"] and "resources.gpu.count" in bad.json()["detail"]
    with pytest.raises(InvalidRequest):
        alice.submit(JobSpec.model_construct(image="busybox", max_price_per_hour=Decimal(-1)))
