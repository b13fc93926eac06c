"""The whole developer/provider flow through the API, in-process."""

from __future__ import annotations

import hashlib
from hashlib import sha256

from fastapi.testclient import TestClient

from gpumarket.coordinator.background import matcher
from tests.helpers import RTX4090, bearer, gpu_spec, gpus, heartbeat, outputs_archive, register


def test_job_flows_from_submit_to_outputs(client: TestClient) -> None:
    app = client.app
    dev_key, _ = register(client, "developer")
    submitted = client.post("/v1/jobs", json=gpu_spec(), headers=bearer(dev_key))
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.json()["state"] == "QUEUED"

    # no provider yet: the queued job explains itself
    queued = client.get(f"/v1/jobs/{job_id}", headers=bearer(dev_key)).json()
    assert queued["why_no_match"]["providers_considered"] == 0
    assert queued["why_no_match"]["matches"] == []

    prov_key, _ = register(client, "provider", region="eu")
    hb = heartbeat(gpus(RTX4090, 2), {"RTX4090": "1.5"}, region="eu")
    ack = client.post(
        "/v1/provider/heartbeat", json=hb.model_dump(mode="json"), headers=bearer(prov_key)
    )
    assert ack.status_code == 200, ack.text

    assert matcher.match_queued(app.state.session_factory, app.state.settings) != []
    polled = client.get("/v1/provider/assignments", params={"wait": 0}, headers=bearer(prov_key))
    assignments = polled.json()["assignments"]
    assert [a["job_id"] for a in assignments] == [job_id]
    assert len(assignments[0]["gpu_uuids"]) == 1

    assert (
        client.post(
            f"/v1/provider/jobs/{job_id}/started", json={}, headers=bearer(prov_key)
        ).json()["state"]
        == "RUNNING"
    )
    chunks = {"chunks": [{"seq": 0, "data": "hello\n"}, {"seq": 1, "data": "world\n"}]}
    client.post(f"/v1/provider/jobs/{job_id}/logs", json=chunks, headers=bearer(prov_key))
    again = client.post(f"/v1/provider/jobs/{job_id}/logs", json=chunks, headers=bearer(prov_key))
    assert again.json()["duplicates"] == 2

    junk = b"not an archive"
    refused = client.put(
        f"/v1/provider/jobs/{job_id}/outputs",
        content=junk,
        headers={**bearer(prov_key), "X-Content-SHA256": "sha256:" + sha256(junk).hexdigest()},
    )
    assert refused.status_code == 422 and "not a readable archive" in refused.json()["detail"]
    archive = outputs_archive({"result.txt": b"42\n"})
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    up = client.put(
        f"/v1/provider/jobs/{job_id}/outputs",
        content=archive,
        headers={**bearer(prov_key), "X-Content-SHA256": digest},
    )
    assert up.status_code == 200, up.text
    canonical = up.json()["output_digest"]
    report = {
        "exit_code": 0,
        "usage_seconds": 0.5,
        "output_hash": digest,
        "output_size": len(archive),
    }
    wrong = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        json={**report, "output_digest": "sha256:" + "0" * 64},
        headers=bearer(prov_key),
    )
    assert wrong.status_code == 422 and "not the canonical digest" in wrong.json()["detail"]
    result = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        json={**report, "output_digest": canonical},
        headers=bearer(prov_key),
    )
    assert result.status_code == 200, result.text
    assert result.json()["state"] == "COMMITTED"
    assert result.json()["output_digest"] == canonical

    logs = client.get(f"/v1/jobs/{job_id}/logs", headers=bearer(dev_key)).json()
    assert "".join(line["data"] for line in logs) == "hello\nworld\n"
    download = client.get(f"/v1/jobs/{job_id}/outputs", headers=bearer(dev_key))
    assert download.content == archive
    assert download.headers["x-output-digest"] == canonical
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(dev_key)).json()
    assert [e["to_state"] for e in events] == [
        "SUBMITTED",
        "QUEUED",
        "ASSIGNED",
        "RUNNING",
        "COMMITTED",
    ]
