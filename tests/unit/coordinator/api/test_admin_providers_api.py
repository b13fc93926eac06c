"""The operator's provider listing: most recently seen first (never-seen ones last), filtered
by online or banned, paged by limit and offset."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.helpers import A100, bearer, gpus, heartbeat, register


def test_listing_orders_filters_and_pages(client: TestClient) -> None:
    admin = bearer(ADMIN_TOKEN)
    seen, _ = register(client, "provider")
    register(client, "provider")  # registered, never heard from
    client.post(
        "/v1/provider/heartbeat",
        headers=bearer(seen),
        json=heartbeat(gpus(A100, 1), {"A100": "1"}).model_dump(mode="json"),
    )
    listed = client.get("/v1/admin/providers", headers=admin).json()
    assert [p["last_heartbeat_at"] is not None for p in listed] == [True, False]
    seen_id, silent_id = listed[0]["id"], listed[1]["id"]

    def ids(**params: object) -> list[str]:
        answer = client.get("/v1/admin/providers", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()]

    assert ids(online=True) == [seen_id]
    assert ids(online=False) == [silent_id]
    assert ids(limit=1) == [seen_id] and ids(limit=1, offset=1) == [silent_id]
    client.post(f"/v1/admin/providers/{silent_id}/ban", json={"reason": "x"}, headers=admin)
    assert ids(banned=True) == [silent_id]
    assert ids(banned=False) == [seen_id]
    assert client.get("/v1/admin/providers", params={"limit": 0}, headers=admin).status_code == 422
