"""Developer endpoints: validation messages, visibility, paging, logs, outputs, cancel."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.helpers import (
    RTX4090,
    bearer,
    cpu_spec,
    gpu_spec,
    gpus,
    heartbeat,
    register,
    running_job,
)


def test_bad_spec_gets_one_line_naming_each_field(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    reply = client.post(
        "/v1/jobs",
        headers=bearer(dev),
        json={
            "image": "",
            "max_price_per_hour": "1",
            "resources": {"gpu": {"count": -1, "vram": "24XB.."}},
            "gpus": 2,
        },
    )
    assert reply.status_code == 422
    body = reply.json()
    assert body["code"] == "invalid_request"
    for needle in (
        "image:",
        "resources.gpu.count:",
        "resources.gpu.vram: '24XB' is not a size",
        "gpus: unknown field",
    ):
        assert needle in body["detail"], body["detail"]
    assert {e["field"] for e in body["errors"]} >= {"image", "resources.gpu.count", "gpus"}


def test_verification_modes_need_a_deterministic_job(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    for mode in ("sampled", "redundant"):
        reply = client.post("/v1/jobs", headers=bearer(dev), json=cpu_spec(verification=mode))
        assert reply.status_code == 422, reply.text
        assert "needs deterministic: true" in reply.json()["detail"]
        assert reply.json()["errors"][0]["field"] == "body"
    for bad, field in ((1, "redundancy"), (6, "redundancy")):
        reply = client.post(
            "/v1/jobs",
            headers=bearer(dev),
            json=cpu_spec(verification="redundant", deterministic=True, redundancy=bad),
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["errors"][0]["field"] == field
    assert client.get("/v1/jobs", headers=bearer(dev)).json()["items"] == []  # nothing created
    redundant = client.post(
        "/v1/jobs",
        headers=bearer(dev),
        json=cpu_spec(verification="redundant", deterministic=True),
    )
    assert redundant.status_code == 201, redundant.text
    job = redundant.json()
    assert job["verification"] == "rerunning" and len(job["verification_runs"]) == 2
    sampled = client.post(
        "/v1/jobs",
        headers=bearer(dev),
        json=cpu_spec(verification="sampled", deterministic=True),
    )
    assert sampled.status_code == 201, sampled.text
    assert sampled.json()["verification"] is None  # drawn once its result is committed
    optimistic = client.post(
        "/v1/jobs", headers=bearer(dev), json=cpu_spec(verification="optimistic")
    )
    assert optimistic.status_code == 201, optimistic.text


def test_developers_see_only_their_jobs_and_pages_are_stable(client: TestClient) -> None:
    alice, _ = register(client, "developer")
    bob, _ = register(client, "developer")
    ids = [
        client.post("/v1/jobs", json=cpu_spec(name=f"j{i}"), headers=bearer(alice)).json()["id"]
        for i in range(5)
    ]
    assert client.get(f"/v1/jobs/{ids[0]}", headers=bearer(bob)).status_code == 404
    assert client.get("/v1/jobs", headers=bearer(bob)).json()["items"] == []
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params, headers=bearer(alice)).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    only = client.get("/v1/jobs", params={"state": "RUNNING"}, headers=bearer(alice)).json()
    assert only["items"] == []
    assert (
        client.get("/v1/jobs", params={"cursor": "garbage!"}, headers=bearer(alice)).status_code
        == 422
    )


def test_queued_job_explains_why_no_match(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    prov, _ = register(client, "provider", region="us")
    client.post(
        "/v1/provider/heartbeat",
        headers=bearer(prov),
        json=heartbeat(gpus(RTX4090, 1), {"RTX4090": "4"}, region="us").model_dump(mode="json"),
    )
    job = client.post(
        "/v1/jobs", json=gpu_spec(gpu="RTX4090:2", region="eu"), headers=bearer(dev)
    ).json()
    why = client.get(f"/v1/jobs/{job['id']}", headers=bearer(dev)).json()["why_no_match"]
    misses = {m["constraint"]: m["message"] for m in why["rejections"][0]["misses"]}
    assert set(misses) == {"gpu_count", "price", "region"}
    assert misses["price"] == "asks 4.000000/h, job pays at most 2.000000/h"
    assert why["summary"] == {"gpu_count": 1, "price": 1, "region": 1}
    dry = client.post("/v1/offers/match", json=gpu_spec(gpu="RTX4090:1", price="5"))
    assert dry.status_code == 200 and dry.json()["matches"][0]["price_per_hour"] == "4.000000"
    book = client.get("/v1/offers").json()
    assert book[0]["gpu_model"] == "RTX4090" and book[0]["free_count"] == 1


def test_logs_are_ordered_idempotent_capped_and_followable(client: TestClient) -> None:
    dev, prov, job_id = running_job(client)
    client.app.state.settings.max_log_bytes_per_job = 1024  # type: ignore[attr-defined]
    chunks = [{"seq": i, "stream": "stdout", "data": f"{i:04d}" * 50 + "\n"} for i in range(8)]
    ack = client.post(
        f"/v1/provider/jobs/{job_id}/logs", json={"chunks": chunks[3:]}, headers=bearer(prov)
    ).json()
    assert ack["accepted"] == 5 and not ack["truncated"]
    ack = client.post(
        f"/v1/provider/jobs/{job_id}/logs", json={"chunks": chunks[:4]}, headers=bearer(prov)
    ).json()
    assert ack["duplicates"] == 1 and ack["truncated"]
    lines = client.get(f"/v1/jobs/{job_id}/logs", headers=bearer(dev)).json()
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    assert "log cap of 1024 bytes" in lines[-1]["data"] or any(
        "log cap" in line["data"] for line in lines
    )
    assert sum(len(line["data"]) for line in lines if line["stream"] != "system") <= 1024
    after = client.get(f"/v1/jobs/{job_id}/logs", params={"after": 5}, headers=bearer(dev)).json()
    assert all(line["seq"] > 5 for line in after)
    client.post(
        f"/v1/provider/jobs/{job_id}/result",
        json={"exit_code": 0, "usage_seconds": 1},
        headers=bearer(prov),
    )
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/logs", params={"follow": True}, headers=bearer(dev)
    ) as stream:
        followed = [json.loads(x) for x in stream.iter_lines() if x]
    assert [f["seq"] for f in followed] == [line["seq"] for line in lines]


def test_outputs_must_match_their_hash_and_cap(client: TestClient) -> None:
    dev, prov, job_id = running_job(client)
    data = b"x" * 4096
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    lie = client.put(
        f"/v1/provider/jobs/{job_id}/outputs",
        content=b"y" * 4096,
        headers={**bearer(prov), "X-Content-SHA256": digest},
    )
    assert lie.status_code == 422 and "hashes to" in lie.json()["detail"]
    client.app.state.settings.max_output_bytes = 1024  # type: ignore[attr-defined]
    big = client.put(
        f"/v1/provider/jobs/{job_id}/outputs",
        content=data,
        headers={**bearer(prov), "X-Content-SHA256": digest},
    )
    assert big.status_code == 413
    store = client.app.state.store  # type: ignore[attr-defined]
    assert not store.exists(digest)
    assert not list(store.root.rglob(".upload-*")), "a failed upload left a temp file"
    assert client.get(f"/v1/jobs/{job_id}/outputs", headers=bearer(dev)).status_code == 404
    unnamed = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        headers=bearer(prov),
        json={"exit_code": 0, "usage_seconds": 1, "output_hash": digest},
    )
    assert unnamed.status_code == 422 and "upload the outputs" in unnamed.json()["detail"]


def test_cancel_and_invalid_transitions_answer_409(client: TestClient) -> None:
    dev, prov, job_id = running_job(client)
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(dev))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
    late = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        headers=bearer(prov),
        json={"exit_code": 0, "usage_seconds": 1},
    )
    assert late.status_code == 409 and late.json()["code"] == "invalid_transition"
    challenge = client.post(
        f"/v1/jobs/{job_id}/challenge", json={"reason": "x"}, headers=bearer(dev)
    )
    assert challenge.status_code == 409


def test_idempotency_key_header(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    headers = {**bearer(dev), "Idempotency-Key": "abc"}
    first = client.post("/v1/jobs", json=cpu_spec(), headers=headers).json()
    second = client.post("/v1/jobs", json=cpu_spec(), headers=headers).json()
    assert first["id"] == second["id"]
    assert len(client.get("/v1/jobs", headers=bearer(dev)).json()["items"]) == 1


def test_a_refunded_job_costs_nothing(client: TestClient) -> None:
    dev, prov, job_id = running_job(client)
    client.post(
        f"/v1/provider/jobs/{job_id}/result",
        json={"exit_code": 0, "usage_seconds": 60.0},
        headers=bearer(prov),
    )
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(dev)).json()["cost"] != "0"
    challenged = client.post(
        f"/v1/jobs/{job_id}/challenge", json={"reason": "wrong output"}, headers=bearer(dev)
    )
    assert challenged.json()["state"] == "DISPUTED", challenged.text
    ruled = client.post(
        f"/v1/admin/jobs/{job_id}/resolve",
        json={"provider_at_fault": True},
        headers=bearer(ADMIN_TOKEN),
    )
    assert ruled.json()["state"] == "REFUNDED", ruled.text
    view = client.get(f"/v1/jobs/{job_id}", headers=bearer(dev)).json()
    assert Decimal(view["cost"]) == 0 and Decimal(view["fee"]) == 0
