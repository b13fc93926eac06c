"""``GET /v1/chain`` while the chain's RPC endpoint is down: a 503 that says the chain is
unreachable (not an internal error), which the SDK rebuilds as ServiceUnavailable."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from gpumarket.coordinator.services.chain_backend import ChainSettlement
from gpumarket.errors import ServiceUnavailable, Unreachable, error_from_response
from gpumarket.sdk import Client
from gpumarket.settlement.market_client import MarketClient


class DownMarket:
    """A market contract whose RPC endpoint refuses connections."""

    def terms(self) -> Any:
        return self.view("currentTerms")

    def view(self, function: str, *args: Any) -> Any:
        raise requests.ConnectionError(
            "HTTPConnectionPool(host='10.0.0.7', port=8545): Max retries exceeded with url: / "
            "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
        )


@pytest.fixture
def chain_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The app settling on a chain whose RPC endpoint is down."""
    market = MarketClient.__new__(MarketClient)  # no RPC endpoint to construct it with
    market.market = DownMarket()  # type: ignore[assignment]
    backend = ChainSettlement.__new__(ChainSettlement)
    backend.client = market
    monkeypatch.setattr(client.app.state, "settlement", backend)  # type: ignore[attr-defined]
    return client


def test_chain_info_answers_503_saying_the_chain_is_unreachable(chain_down: TestClient) -> None:
    reply = chain_down.get("/v1/chain")
    assert reply.status_code == 503
    body = reply.json()
    assert body["code"] == "service_unavailable"
    assert "the chain is unreachable" in body["detail"]
    assert "10.0.0.7" not in body["detail"]  # the coordinator's own RPC URL stays private
    rebuilt = error_from_response(reply.status_code, body)
    assert type(rebuilt) is ServiceUnavailable
    assert isinstance(rebuilt, Unreachable)  # retried like any transient failure


def test_the_sdk_raises_service_unavailable(chain_down: TestClient) -> None:
    sdk = Client("http://testserver", transport=chain_down._transport)
    with pytest.raises(ServiceUnavailable, match="the chain is unreachable"):
        sdk.chain_info()
    sdk.close()


def test_chain_info_is_still_404_off_chain(client: TestClient) -> None:
    reply = client.get("/v1/chain")
    assert reply.status_code == 404 and reply.json()["code"] == "not_found"
