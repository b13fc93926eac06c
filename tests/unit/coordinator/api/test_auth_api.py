"""Registration and credentials: clear 401/403s, one-time challenges, key rotation."""

from __future__ import annotations

from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer, cpu_spec, new_wallet, register


def test_missing_wrong_and_misused_credentials(client: TestClient) -> None:
    missing = client.get("/v1/jobs")
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
    wrong = client.get("/v1/jobs", headers=bearer("gmk_dev_nope"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
    prov_key, _ = register(client, "provider")
    as_dev = client.post("/v1/jobs", json=cpu_spec(), headers=bearer(prov_key))
    assert as_dev.status_code == 403 and "for developers" in as_dev.json()["detail"]
    dev_key, _ = register(client, "developer")
    assert client.get("/v1/provider/assignments?wait=0", headers=bearer(dev_key)).status_code == 403
    assert client.get("/v1/admin/stats", headers=bearer(dev_key)).status_code == 403
    assert client.get("/v1/admin/stats", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_challenge_is_single_use_and_signature_must_match(client: TestClient) -> None:
    wallet, impostor = new_wallet(), new_wallet()
    body = client.post(
        "/v1/auth/challenge", json={"address": wallet.address, "role": "developer"}
    ).json()
    forged = impostor.sign_message(encode_defunct(text=body["message"])).signature.hex()
    refused = client.post(
        "/v1/auth/register", json={"challenge_id": body["challenge_id"], "signature": "0x" + forged}
    )
    assert refused.status_code == 401 and "not by" in refused.json()["detail"]
    good = wallet.sign_message(encode_defunct(text=body["message"])).signature.hex()
    payload = {"challenge_id": body["challenge_id"], "signature": "0x" + good}
    assert client.post("/v1/auth/register", json=payload).status_code == 201
    replay = client.post("/v1/auth/register", json=payload)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]


def test_admin_role_cannot_be_registered_and_addresses_are_checked(client: TestClient) -> None:
    admin = client.post(
        "/v1/auth/challenge", json={"address": new_wallet().address, "role": "admin"}
    )
    assert admin.status_code == 422 and "admin token" in admin.json()["detail"]
    bad = client.post("/v1/auth/challenge", json={"address": "0x123", "role": "developer"})
    assert bad.status_code == 422 and "address" in bad.json()["detail"]


def test_registering_again_rotates_the_key(client: TestClient) -> None:
    wallet = new_wallet()

    def login() -> str:
        body = client.post(
            "/v1/auth/challenge", json={"address": wallet.address, "role": "developer"}
        ).json()
        sig = wallet.sign_message(encode_defunct(text=body["message"])).signature.hex()
        reply = client.post(
            "/v1/auth/register",
            json={"challenge_id": body["challenge_id"], "signature": "0x" + sig},
        )
        return str(reply.json()["api_key"])

    old = login()
    new = login()
    assert client.get("/v1/jobs", headers=bearer(old)).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(new)).status_code == 200


def test_a_wrong_admin_token_is_called_that(client: TestClient) -> None:
    """A token that is not shaped like an API key was meant as the admin token: telling its
    sender to register again sends them the wrong way."""
    wrong = client.get("/v1/admin/stats", headers=bearer("not-the-admin-token"))
    assert wrong.status_code == 401
    assert wrong.json()["detail"].startswith("the admin token is wrong")
    assert "register again" not in wrong.json()["detail"]
    stale_key = client.get("/v1/jobs", headers=bearer("gmk_dev_nope"))
    assert "register again" in stale_key.json()["detail"]
