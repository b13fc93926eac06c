"""The EIP-712 typed data every signer shares: the JSON a wallet signs carries the contract's
member names, refuses look-alike types, and hashes to the digests the contract computes."""

from __future__ import annotations

import pytest
from eth_account import Account
from pydantic import ValidationError

from gpumarket.protocol import OrderTypedData, PaymentRequest, ResultTypedData
from gpumarket.settlement.signing import (
    Order,
    job_id_bytes,
    order_signer,
    result_hash,
    result_typed_data,
    signable,
)

MARKET = "0x" + "ab" * 20
ORDER = Order(job_id_bytes("job-0"), b"\x01" * 32, 5, 2**40, 0)


def test_an_order_is_the_json_a_wallet_signs() -> None:
    typed = ORDER.typed_data(31337, MARKET).eip712()
    assert typed["primaryType"] == "Order"
    assert typed["domain"] == {
        "name": "gpumarket",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": MARKET,
    }
    assert typed["message"] == {
        "jobId": "0x" + ORDER.job_id.hex(),
        "specHash": "0x" + "01" * 32,
        "maxPayment": 5,
        "deadline": 2**40,
        "nonce": 0,
    }
    assert [f["name"] for f in typed["types"]["Order"]] == [
        "jobId",
        "specHash",
        "maxPayment",
        "deadline",
        "nonce",
    ]
    assert set(typed["types"]) == {"EIP712Domain", "Order"}
    again = OrderTypedData.model_validate(typed)  # a wallet's payload reads back as it was
    assert Order.from_typed_data(again) == ORDER


def test_the_digests_are_the_ones_signed_before_the_model() -> None:
    """Pinned from the dict-built typed data the contract's orderDigest/resultDigest match."""
    order = signable(ORDER.typed_data(31337, MARKET))
    assert order.header.hex() == "c36b5e224a1aecbfb9c7d32eff3032e76c968770efb882476d88280539d9909e"
    assert order.body.hex() == "661c26299d5280b213fa540879c8c426464b7e7064bf9ac89725c349a3bdcb09"
    claim = result_typed_data(job_id_bytes("job-0"), result_hash(0, "sha256:0"), 77, 31337, MARKET)
    assert signable(claim).body.hex() == (
        "27172f39ee9388b99ae845c92afdde03afd8eb0f1fa160d4a52480a43739b0d1"
    )


def test_a_payment_request_gives_the_same_order_the_sdk_signs() -> None:
    request = PaymentRequest(
        chain_id=31337,
        market=MARKET,
        chain_job_id="0x" + ORDER.job_id.hex(),
        spec_hash="0x" + ORDER.spec_hash.hex(),
        max_payment_micros=5,
        deadline=2**40,
        nonce=0,
    )
    typed = OrderTypedData.for_request(request)
    assert typed == ORDER.typed_data(31337, MARKET)
    account = Account.create()
    signature = account.sign_message(signable(typed)).signature
    assert order_signer(bytes(signature), Order.from_request(request), 31337, MARKET) == (
        account.address
    )


def test_look_alike_types_are_refused() -> None:
    typed = ORDER.typed_data(31337, MARKET).eip712()
    typed["types"]["Order"][2]["type"] = "uint256"
    with pytest.raises(ValidationError, match="types must be exactly"):
        OrderTypedData.model_validate(typed)
    reordered = ORDER.typed_data(31337, MARKET).eip712()
    reordered["types"]["Order"].reverse()
    with pytest.raises(ValidationError, match="types must be exactly"):
        OrderTypedData.model_validate(reordered)
    with pytest.raises(ValidationError):
        ResultTypedData.model_validate(ORDER.typed_data(31337, MARKET).eip712())


def test_malformed_values_are_refused() -> None:
    typed = ORDER.typed_data(31337, MARKET).eip712()
    for field, value in [("jobId", "0x12"), ("maxPayment", -1), ("nonce", 2**64)]:
        bad = {**typed, "message": {**typed["message"], field: value}}
        with pytest.raises(ValidationError):
            OrderTypedData.model_validate(bad)
    wrong_domain = {**typed, "domain": {**typed["domain"], "name": "other"}}
    with pytest.raises(ValidationError):
        OrderTypedData.model_validate(wrong_domain)


def test_payloads_do_not_share_the_type_lists() -> None:
    first = ORDER.typed_data(31337, MARKET)
    first.types["Order"].pop()
    assert len(ORDER.typed_data(31337, MARKET).types["Order"]) == 5
