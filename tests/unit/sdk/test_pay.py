"""The SDK signs a job's order only when the coordinator's payment request matches the spec it
submitted: a coordinator cannot make a developer sign for more, or for another job."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account

from gpumarket.errors import InvalidRequest
from gpumarket.protocol import JobSpec
from gpumarket.protocol.jobs import spec_hash
from gpumarket.protocol.pricing import max_payment_micros
from gpumarket.sdk import Client
from gpumarket.sdk.client import PaymentPending
from gpumarket.settlement.signing import Order, job_id_bytes, order_signer

MARKET = "0x" + "11" * 20
SPEC = JobSpec.model_validate(
    {"image": "busybox:1", "max_price_per_hour": "36", "max_duration_seconds": 100}
)


def job_view(**payment: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    request = {
        "chain_id": 31337,
        "market": MARKET,
        "chain_job_id": "0x" + job_id_bytes("job_1").hex(),
        "spec_hash": "0x" + spec_hash(SPEC),
        "max_payment_micros": max_payment_micros(SPEC),
        "deadline": 2_000_000_000,
        "nonce": 7,
        **payment,
    }
    return {
        "id": "job_1",
        "state": "SUBMITTED",
        "spec": SPEC.model_dump(mode="json"),
        "owner": "dev_1",
        "created_at": now,
        "updated_at": now,
        "payment": request,
    }


def client_with(view: dict[str, Any], sent: list[dict[str, Any]]) -> Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs":
            return httpx.Response(201, json=view)
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={**view, "state": "QUEUED", "payment": None})

    return Client("http://coordinator", "key", transport=httpx.MockTransport(handle))


def test_a_matching_request_is_signed_by_the_wallet() -> None:
    wallet = Account.create()
    sent: list[dict[str, Any]] = []
    job = client_with(job_view(), sent).submit(SPEC, wallet=wallet)
    assert job.state.value == "QUEUED" and len(sent) == 1
    order = Order(
        job_id_bytes("job_1"),
        bytes.fromhex(spec_hash(SPEC)),
        max_payment_micros(SPEC),
        2_000_000_000,
        7,
    )
    signature = bytes.fromhex(sent[0]["signature"][2:])
    assert order_signer(signature, order, 31337, MARKET) == wallet.address


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_payment_micros", max_payment_micros(SPEC) + 1),
        ("spec_hash", "0x" + "00" * 32),
        ("chain_job_id", "0x" + job_id_bytes("job_2").hex()),
    ],
)
def test_a_request_that_differs_from_the_spec_is_refused(field: str, value: object) -> None:
    sent: list[dict[str, Any]] = []
    with pytest.raises(InvalidRequest, match=f"refusing to sign.*{field}"):
        client_with(job_view(**{field: value}), sent).submit(SPEC, wallet=Account.create())
    assert sent == []


def test_without_a_wallet_the_job_waits_for_its_order_and_says_so() -> None:
    sent: list[dict[str, Any]] = []
    with pytest.warns(PaymentPending, match=r"job_1 waits in SUBMITTED for the developer's sig"):
        job = client_with(job_view(), sent).submit(SPEC)
    assert job.state.value == "SUBMITTED" and job.payment is not None and sent == []
