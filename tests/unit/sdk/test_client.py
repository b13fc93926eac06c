"""A client is built on a coordinator URL with its scheme: one without says how to write it,
before any request goes out. A URL that points at something else is named as such, and a
challenge the contract would refuse says why in the job's terms."""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account

from gpumarket.errors import InvalidRequest, NotFound, Unreachable
from gpumarket.sdk import AdminClient, Client, ProviderClient
from tests.unit.sdk.conftest import job


@pytest.mark.parametrize("kind", [Client, ProviderClient, AdminClient])
def test_a_url_without_its_scheme_says_how_to_write_it(kind: type[Client]) -> None:
    with pytest.raises(
        InvalidRequest, match=r"must start with http:// or https://, e.g. http://localhost:8000"
    ):
        kind("localhost:8000", "key")
    kind("https://market.example", "key").close()


def _serving(answer: httpx.Response) -> Client:
    return Client("http://elsewhere:8080", "key", transport=httpx.MockTransport(lambda r: answer))


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"detail": "Not Found"}),  # another FastAPI app
        httpx.Response(404, text="<html><body>nginx</body></html>"),
        httpx.Response(200, text="<html><body>welcome</body></html>"),  # a web site
    ],
)
def test_something_that_is_not_a_coordinator_is_named_as_such(answer: httpx.Response) -> None:
    with _serving(answer) as client, pytest.raises(Unreachable) as raised:
        client.get("job_1")
    message = raised.value.message
    assert "http://elsewhere:8080 does not look like a gpumarket coordinator" in message
    assert "GET /v1/jobs/job_1" in message and "--coordinator" in message
    with _serving(answer) as client, pytest.raises(Unreachable):
        client.chain_info()  # not taken for "this market keeps accounts off-chain"


def test_a_coordinators_own_not_found_is_kept() -> None:
    answer = httpx.Response(404, json={"detail": "job job_9 not found", "code": "not_found"})
    with _serving(answer) as client, pytest.raises(NotFound, match="job job_9 not found"):
        client.get("job_9")
    off_chain = httpx.Response(404, json={"detail": "off-chain", "code": "not_found"})
    with _serving(off_chain) as client:
        assert client.chain_info() is None


CHAIN = {
    "chain_id": 31337,
    "rpc_url": "http://127.0.0.1:8545",
    "market": "0x" + "11" * 20,
    "token": "0x" + "22" * 20,
    "fee_bps": 0,
    "burn_bps": 0,
    "window_seconds": 60,
    "min_stake_micros": 0,
    "challenge_bond_micros": 0,
}


def test_challenging_a_failed_job_says_it_has_no_result_to_dispute() -> None:
    """On-chain, the contract would answer only that the state is wrong."""
    failed = {**job("FAILED"), "chain_job_id": "0x" + "33" * 32}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chain":
            return httpx.Response(200, json=CHAIN)
        assert request.method == "GET", "nothing may be sent for a job that cannot be challenged"
        return httpx.Response(200, json=failed)

    with (
        Client("http://coordinator", "key", transport=httpx.MockTransport(answer)) as client,
        pytest.raises(InvalidRequest) as raised,
    ):
        client.challenge("job_1", "wrong output", wallet=Account.create())
    assert raised.value.message == (
        "job job_1 is FAILED: it ended without a result to dispute and your escrow was "
        "refunded; only a COMMITTED result can be challenged, inside its challenge window"
    )
