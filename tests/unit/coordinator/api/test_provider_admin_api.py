"""Provider heartbeats and assignment visibility; operator endpoints, stats and metrics."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from httpx import Response

from gpumarket.coordinator.background import matcher
from gpumarket.coordinator.db.models import Job
from tests.conftest import ADMIN_TOKEN
from tests.helpers import A100, RTX4090, bearer, gpu_spec, gpus, heartbeat, register


def test_heartbeat_rejects_offers_for_gpus_it_does_not_have(client: TestClient) -> None:
    prov, _ = register(client, "provider")
    reply = client.post(
        "/v1/provider/heartbeat",
        headers=bearer(prov),
        json=heartbeat(gpus(RTX4090, 1), {"A100": "1"}).model_dump(mode="json"),
    )
    assert reply.status_code == 422
    assert "A100" in reply.json()["detail"] and "RTX4090" in reply.json()["detail"]


def assigned_job(client: TestClient) -> tuple[str, str, str, str]:
    """A developer's job matched to a provider with one RTX 4090, and another provider:
    (job id, developer key, the assigned provider's key, the other provider's key)."""
    dev, _ = register(client, "developer")
    mine, _ = register(client, "provider")
    other, _ = register(client, "provider")
    client.post(
        "/v1/provider/heartbeat",
        headers=bearer(mine),
        json=heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json"),
    )
    job_id = client.post("/v1/jobs", json=gpu_spec(), headers=bearer(dev)).json()["id"]
    matcher.match_queued(
        client.app.state.session_factory,  # type: ignore[attr-defined]
        client.app.state.settings,  # type: ignore[attr-defined]
    )
    return job_id, dev, mine, other


def test_providers_see_only_jobs_assigned_to_them(client: TestClient) -> None:
    job_id, _, mine, other = assigned_job(client)
    assert client.get(f"/v1/provider/jobs/{job_id}", headers=bearer(mine)).status_code == 200
    assert client.get(f"/v1/provider/jobs/{job_id}", headers=bearer(other)).status_code == 404
    assert (
        client.post(
            f"/v1/provider/jobs/{job_id}/started", json={}, headers=bearer(other)
        ).status_code
        == 404
    )
    assert (
        client.get("/v1/provider/assignments?wait=0", headers=bearer(other)).json()["assignments"]
        == []
    )


def test_ban_unban_stats_and_metrics(client: TestClient) -> None:
    admin = bearer(ADMIN_TOKEN)
    dev, _ = register(client, "developer")
    prov, _ = register(client, "provider", region="eu")
    client.post(
        "/v1/provider/heartbeat",
        headers=bearer(prov),
        json=heartbeat(gpus(A100, 4), {"A100": "1.5"}).model_dump(mode="json"),
    )
    listed = client.get("/v1/admin/providers", headers=admin).json()
    assert len(listed) == 1 and listed[0]["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"
    provider_id = listed[0]["id"]

    no_reason = client.post(
        f"/v1/admin/providers/{provider_id}/ban", json={"reason": ""}, headers=admin
    )
    assert no_reason.status_code == 422
    banned = client.post(
        f"/v1/admin/providers/{provider_id}/ban", json={"reason": "fraud"}, headers=admin
    )
    assert banned.json()["banned"] is True
    assert client.get("/v1/offers").json() == []
    job_id = client.post("/v1/jobs", json=gpu_spec(gpu="A100:2"), headers=bearer(dev)).json()["id"]
    state = client.app.state  # type: ignore[attr-defined]
    assert matcher.match_queued(state.session_factory, state.settings) == []
    polled = client.get("/v1/provider/assignments?wait=0", headers=bearer(prov))
    assert polled.status_code == 403 and "banned: fraud" in polled.json()["detail"]
    client.post(f"/v1/admin/providers/{provider_id}/unban", headers=admin)
    with state.session_factory() as session:  # make the job due again now
        row = session.get(Job, job_id)
        row.next_match_at = row.created_at
        session.commit()
    assert matcher.match_queued(state.session_factory, state.settings) == [provider_id]

    stats = client.get("/v1/admin/stats", headers=admin).json()
    assert stats["jobs_by_state"]["ASSIGNED"] == 1
    assert stats["gpus_online"] == 4 and stats["gpus_busy"] == 2
    assert stats["providers_online"] == 1 and stats["providers_banned"] == 0
    text = client.get("/metrics", headers=admin).text
    assert 'gpumarket_jobs{state="ASSIGNED"} 1.0' in text
    assert "gpumarket_gpus_busy 2.0" in text
    all_jobs = client.get("/v1/admin/jobs", params={"state": "ASSIGNED"}, headers=admin).json()
    assert [j["id"] for j in all_jobs["items"]] == [job_id]
    assert (
        client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin).json()["state"] == "CANCELLED"
    )
    assert client.get("/healthz").json()["status"] == "ok"


def test_pull_progress_is_shown_while_assigned_and_keeps_the_assignment_alive(
    client: TestClient,
) -> None:
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    job_id, dev, mine, other = assigned_job(client)
    with factory() as session:
        first_deadline = session.get(Job, job_id).lease_expires_at

    def report(key: str, done: int, **extra: object) -> Response:
        body = {"detail": "pytorch:2 (1/3 layers)", "done_bytes": done, "total_bytes": 900}
        return client.post(
            f"/v1/provider/jobs/{job_id}/progress",
            headers=bearer(key),
            json=body | extra,
        )

    assert report(other, 10).status_code == 404  # not its job
    assert report(mine, 10, speed="fast").status_code == 422  # strict wire model
    assert report(mine, -1).status_code == 422
    time.sleep(0.01)
    assert report(mine, 300).status_code == 200
    view = client.get(f"/v1/jobs/{job_id}", headers=bearer(dev)).json()
    assert view["state"] == "ASSIGNED"
    assert view["progress"] == {
        "phase": "pulling_image",
        "detail": "pytorch:2 (1/3 layers)",
        "done_bytes": 300,
        "total_bytes": 900,
    }
    with factory() as session:
        moved_deadline = session.get(Job, job_id).lease_expires_at
    assert moved_deadline > first_deadline  # bytes moved: another acknowledgement period

    time.sleep(0.01)
    assert report(mine, 300).status_code == 200  # a stalled pull does not extend it
    with factory() as session:
        assert session.get(Job, job_id).lease_expires_at == moved_deadline

    client.post(f"/v1/provider/jobs/{job_id}/started", json={}, headers=bearer(mine))
    view = client.get(f"/v1/jobs/{job_id}", headers=bearer(dev)).json()
    assert view["state"] == "RUNNING" and view["progress"] is None
    late = report(mine, 900)
    assert late.status_code == 409 and "only taken while it is ASSIGNED" in late.json()["detail"]
