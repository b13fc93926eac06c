"""Hostile input against a real coordinator process over HTTP, on SQLite and PostgreSQL: the
process survives, every answer is a 4xx that says what to fix, and nothing is stored."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.helpers import RTX4090, bearer, cpu_spec, gpu_spec, gpus, heartbeat, register
from tests.integration.conftest import fresh_postgres_database
from tests.integration.processes import CoordinatorProcess

pytestmark = pytest.mark.integration


SHORT_DEADLINES = {"GPUMARKET_HEADER_TIMEOUT_SECONDS": "1", "GPUMARKET_BODY_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoordinatorProcess]:
    """One coordinator per database for the whole module (every test here leaves it as it
    found it, alive), with short header and body deadlines."""
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    db_url = sqlite_url(tmp) if request.param == "sqlite" else fresh_postgres_database()
    with CoordinatorProcess.start(
        db_url, tmp / "data", admin_token=ADMIN_TOKEN, extra_env=SHORT_DEADLINES
    ) as proc:
        yield proc


def _alive(proc: CoordinatorProcess) -> None:
    assert proc.process.poll() is None, proc.log_path.read_text()
    assert httpx.get(f"{proc.url}/healthz", timeout=5).status_code == 200


def _raw(proc: CoordinatorProcess, data: bytes) -> socket.socket:
    port = int(proc.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(data)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_nested_100000_levels_does_not_take_the_market_down(
    hostile: CoordinatorProcess,
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # 195 KiB: it crashed the process with SIGSEGV
    with httpx.Client(base_url=hostile.url, timeout=30) as http:
        for path in ("/v1/auth/challenge", "/v1/offers/match", "/v1/jobs"):
            reply = http.post(path, content=deep, headers={"Content-Type": "application/json"})
            assert reply.status_code == 422, reply.text
            assert "nests deeper than" in reply.json()["detail"]
    _alive(hostile)


def test_an_announced_huge_body_is_refused_without_waiting_for_it(
    hostile: CoordinatorProcess,
) -> None:
    sock = _raw(
        hostile,
        b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2147483648\r\n\r\n{}",
    )
    with sock:
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit_exceeded" in answer
    _alive(hostile)


def test_connections_that_never_finish_their_headers_are_closed(
    hostile: CoordinatorProcess,
) -> None:
    sockets = [_raw(hostile, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(50)]
    sockets.append(_raw(hostile, b""))  # connected, silent
    _alive(hostile)  # others are served meanwhile
    try:
        for sock in sockets:
            sock.settimeout(10)
            assert _read_all(sock) == b""  # closed by the coordinator, not by us
    finally:
        for sock in sockets:
            sock.close()
    _alive(hostile)


def test_a_body_that_stops_arriving_is_answered_408(hostile: CoordinatorProcess) -> None:
    sock = _raw(
        hostile,
        b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"address": ',
    )
    with sock:
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    _alive(hostile)


def test_values_no_column_can_hold_are_422_naming_the_field(
    hostile: CoordinatorProcess,
) -> None:
    with httpx.Client(base_url=hostile.url, timeout=30) as http:
        dev, _ = register(http, "developer")
        prov, _ = register(http, "provider")
        cases = [
            ("/v1/jobs", dev, cpu_spec(name="nul\x00name"), "name"),
            ("/v1/jobs", dev, cpu_spec(env={"A": "\x00"}), "env"),
            ("/v1/jobs", dev, cpu_spec(env={"BIG": "x" * 40_000}), "env.BIG"),
            ("/v1/jobs", dev, cpu_spec(max_price_per_hour="1e400"), "max_price_per_hour"),
            ("/v1/jobs", dev, cpu_spec(resources={"memory": "99999999999999999999TB"}), "memory"),
        ]
        beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json")
        beat["resources"]["memory_mb"] = 2**64
        cases.append(("/v1/provider/heartbeat", prov, beat, "resources.memory_mb"))
        beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json")
        beat["gpus"][0]["driver_version"] = "5" * 100_000
        cases.append(("/v1/provider/heartbeat", prov, beat, "gpus.0.driver_version"))
        beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json")
        beat["offers"][0]["price_per_hour"] = "1e400"
        cases.append(("/v1/provider/heartbeat", prov, beat, "offers.0.price_per_hour"))
        for path, key, body, field in cases:
            reply = http.post(path, json=body, headers=bearer(key))
            assert reply.status_code == 422, (path, field, reply.text)
            assert field in reply.json()["detail"], reply.json()["detail"]
        assert http.get("/v1/jobs", headers=bearer(dev)).json()["items"] == []
        nul_in_url = http.get("/v1/jobs/job_%00", headers=bearer(dev))
        assert nul_in_url.status_code == 422
    _alive(hostile)


def test_concurrent_retries_with_one_idempotency_key_get_the_one_job(
    hostile: CoordinatorProcess,
) -> None:
    with httpx.Client(base_url=hostile.url, timeout=60) as http:
        dev, _ = register(http, "developer")

    def submit(_: int) -> httpx.Response:
        return httpx.post(
            f"{hostile.url}/v1/jobs",
            json=cpu_spec(),
            headers={**bearer(dev), "Idempotency-Key": "same-key"},
            timeout=60,
        )

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(submit, range(20)))
    assert {r.status_code for r in replies} == {201}, [r.text for r in replies]
    assert len({r.json()["id"] for r in replies}) == 1
    listed = httpx.get(f"{hostile.url}/v1/jobs", headers=bearer(dev)).json()
    assert len(listed["items"]) == 1


def test_anonymous_sign_in_is_rate_limited(db_url: str, tmp_path: Path) -> None:
    budget = {"GPUMARKET_RATE_LIMIT_AUTH": "20/minute"}
    with CoordinatorProcess.start(
        db_url, tmp_path / "data", admin_token=ADMIN_TOKEN, extra_env=budget
    ) as limited:
        _spend_the_sign_in_budget(limited)


def _spend_the_sign_in_budget(hostile: CoordinatorProcess) -> None:
    address = "0x" + "ab" * 20
    codes = []
    retry_after = None
    for _ in range(25):
        reply = httpx.post(
            f"{hostile.url}/v1/auth/challenge",
            json={"address": address, "role": "developer"},
            timeout=10,
        )
        codes.append(reply.status_code)
        retry_after = reply.headers.get("Retry-After", retry_after)
    assert codes[:20] == [201] * 20 and codes[20:] == [429] * 5
    assert retry_after is not None and int(retry_after) >= 1
    start = time.monotonic()
    _alive(hostile)
    assert time.monotonic() - start < 30  # /healthz is not behind the budget


def test_a_provider_leaving_mid_upload_is_no_error(hostile: CoordinatorProcess) -> None:
    with httpx.Client(base_url=hostile.url, timeout=30) as http:
        dev, _ = register(http, "developer")
        prov, _ = register(http, "provider")
        beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json")
        assert http.post("/v1/provider/heartbeat", json=beat, headers=bearer(prov)).is_success
        job_id = http.post("/v1/jobs", json=gpu_spec(), headers=bearer(dev)).json()["id"]
        deadline = time.monotonic() + 30
        while True:
            batch = http.get(
                "/v1/provider/assignments", params={"wait": 2}, headers=bearer(prov)
            ).json()
            if any(a["job_id"] == job_id for a in batch["assignments"]):
                break
            assert time.monotonic() < deadline, "the job was never assigned"
    sock = _raw(
        hostile,
        f"PUT /v1/provider/jobs/{job_id}/outputs HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {prov}\r\nX-Content-SHA256: sha256:{'0' * 64}\r\n"
        "Content-Length: 100000\r\n\r\n".encode()
        + b"x" * 1000,
    )
    time.sleep(0.5)  # the coordinator is reading the body: the provider goes away
    sock.close()
    time.sleep(1)
    _alive(hostile)
    log = hostile.log_path.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
