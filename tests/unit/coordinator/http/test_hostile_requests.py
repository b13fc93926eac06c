"""Hostile and careless requests through the whole app: 4xx answers that say what to fix,
never a 500, and nothing stored that should not be."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpumarket.coordinator.app import create_app
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import AuthChallenge
from gpumarket.coordinator.settings import CoordinatorSettings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import (
    bearer,
    cpu_spec,
    new_wallet,
    register,
    running_job,
)


@pytest.fixture
def limited(settings: CoordinatorSettings) -> Iterator[TestClient]:
    """The app with the product's default rate limits (the shared fixture turns them off)."""
    defaults = CoordinatorSettings(db_url=settings.db_url)
    limited_settings = settings.model_copy(
        update={
            "rate_limit_auth": defaults.rate_limit_auth,
            "rate_limit_match": "3/minute",
            "rate_limit_submit": defaults.rate_limit_submit,
        }
    )
    with TestClient(create_app(limited_settings)) as test_client:
        yield test_client


def _challenge(client: TestClient) -> int:
    wallet = new_wallet()
    reply = client.post("/v1/auth/challenge", json={"address": wallet.address, "role": "developer"})
    return reply.status_code


def test_anonymous_sign_in_is_rate_limited_with_retry_after(limited: TestClient) -> None:
    codes = [_challenge(limited) for _ in range(70)]
    assert codes[:60] == [201] * 60
    assert set(codes[60:]) == {429}
    reply = limited.post(
        "/v1/auth/challenge", json={"address": new_wallet().address, "role": "developer"}
    )
    assert reply.status_code == 429
    assert reply.json()["code"] == "rate_limited"
    assert "(limit 60/minute)" in reply.json()["detail"]
    assert 1 <= int(reply.headers["Retry-After"]) <= 60


def test_match_explanations_have_their_own_budget(limited: TestClient) -> None:
    codes = [limited.post("/v1/offers/match", json=cpu_spec()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert _challenge(limited) == 201  # another bucket


def test_expired_challenges_are_purged(client: TestClient) -> None:
    assert _challenge(client) == 201
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        for row in session.scalars(select(AuthChallenge)):
            row.expires_at = utcnow().replace(year=2000)
        session.commit()
    assert _challenge(client) == 201
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(AuthChallenge)) == 1


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|job_\x00x").decode(),
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|" + b"j" * 500).decode(),
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|job_1").decode(),  # no time zone
        base64.urlsafe_b64encode(b"\xff\xfe|").decode(),
        "not base64 at all!",
        "A" * 5000,
    ],
)
def test_a_crafted_cursor_is_a_clear_422(client: TestClient, cursor: str) -> None:
    dev, _ = register(client, "developer")
    reply = client.get("/v1/jobs", params={"cursor": cursor}, headers=bearer(dev))
    assert reply.status_code == 422, reply.text
    assert "cursor" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/offers?offset=100000000000000000000", "offset"),
        ("/v1/offers?max_price=1e400", "max_price"),
        ("/v1/offers?gpu_model=" + "A" * 100, "gpu_model"),
        ("/v1/admin/providers?offset=100000000000000000000", "offset"),
        ("/v1/admin/jobs?owner=" + "x" * 100, "owner"),
    ],
)
def test_query_parameters_are_bounded(client: TestClient, url: str, field: str) -> None:
    reply = client.get(url, headers=bearer(ADMIN_TOKEN))
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["detail"]


def test_log_after_is_bounded(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    job_id = client.post("/v1/jobs", json=cpu_spec(), headers=bearer(dev)).json()["id"]
    reply = client.get(f"/v1/jobs/{job_id}/logs?after={10**20}", headers=bearer(dev))
    assert reply.status_code == 422 and "after" in reply.json()["detail"]


def test_infinity_in_a_result_is_refused(client: TestClient) -> None:
    _, prov, job_id = running_job(client)
    reply = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        content=b'{"exit_code": 0, "usage_seconds": Infinity}',
        headers={**bearer(prov), "Content-Type": "application/json"},
    )
    assert reply.status_code == 422 and "usage_seconds" in reply.json()["detail"]
    done = client.post(
        f"/v1/provider/jobs/{job_id}/result",
        json={"exit_code": 0, "usage_seconds": 1.0},
        headers=bearer(prov),
    )
    assert done.json()["state"] == "COMMITTED", done.text
    # what the job printed is settled with the result: new output is refused, a resend is not
    late = client.post(
        f"/v1/provider/jobs/{job_id}/logs",
        json={"chunks": [{"seq": 5, "data": "late\n"}]},
        headers=bearer(prov),
    )
    assert late.status_code == 409 and "log is closed" in late.json()["detail"]


def test_another_providers_job_looks_the_same_as_a_missing_one(client: TestClient) -> None:
    _, _, job_id = running_job(client)
    prober, _ = register(client, "provider")
    chunk = {"chunks": [{"seq": 0, "data": "x"}]}
    theirs = client.post(f"/v1/provider/jobs/{job_id}/logs", json=chunk, headers=bearer(prober))
    missing = client.post("/v1/provider/jobs/job_nope/logs", json=chunk, headers=bearer(prober))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(job_id, "ID") == missing.json()["detail"].replace(
        "job_nope", "ID"
    )


def test_metrics_need_the_admin_token_unless_published(
    client: TestClient, settings: CoordinatorSettings
) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("gmk_dev_wrong")).status_code == 401
    assert client.get("/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 200
    public = settings.model_copy(update={"public_metrics": True})
    with TestClient(create_app(public)) as open_client:
        assert "gpumarket_jobs" in open_client.get("/metrics").text


def test_the_same_idempotency_key_answers_the_one_job(client: TestClient) -> None:
    dev, _ = register(client, "developer")
    headers = {**bearer(dev), "Idempotency-Key": "retry-1"}
    first = client.post("/v1/jobs", json=cpu_spec(), headers=headers)
    again = client.post("/v1/jobs", json=cpu_spec(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/v1/jobs", json=cpu_spec(name="other"), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    bad = client.post(
        "/v1/jobs", json=cpu_spec(), headers={**bearer(dev), "Idempotency-Key": "a b"}
    )
    assert bad.status_code == 422
