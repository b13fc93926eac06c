"""The operator's client answers with the protocol's models, and sends the bodies the admin
routes take, field for field; values are left for the coordinator to judge."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from gpumarket.protocol import ChainChange, MarketStats, ProviderView
from gpumarket.sdk import AdminClient

CHAIN = {
    "chain_id": 31337,
    "rpc_url": "http://127.0.0.1:8545",
    "market": "0x" + "11" * 20,
    "token": "0x" + "22" * 20,
    "fee_bps": 300,
    "burn_bps": 0,
    "window_seconds": 60,
    "min_stake_micros": 0,
    "challenge_bond_micros": 0,
}
STATS = {
    "jobs_by_state": {"RUNNING": 1},
    "providers_total": 1,
    "providers_online": 1,
    "providers_banned": 0,
    "gpus_online": 8,
    "gpus_busy": 2,
    "cpus_online": 0.0,
    "cpus_busy": 0.0,
    "window_seconds": 3600,
    "gpu_hours_used": 1.5,
    "gpu_hours_available": 8.0,
    "utilization": 0.1875,
    "cpu_hours_used": 0.0,
    "cpu_hours_available": 0.0,
    "cpu_utilization": 0.0,
    "revenue_micros": 10,
    "fees_micros": 1,
    "pending_micros": 0,
}


def provider(banned: bool = False) -> dict[str, Any]:
    """A provider row as the coordinator sends it."""
    return {
        "id": "prov_1",
        "address": "0x" + "33" * 20,
        "region": "eu",
        "online": True,
        "accepting": True,
        "allows_network": False,
        "banned": banned,
        "ban_reason": "flaky" if banned else None,
        "version": "1.0",
        "registered_at": datetime.now(UTC).isoformat(),
        "last_heartbeat_at": None,
        "gpus": [{"name": "H100"}],
        "telemetry": [],
        "cpu_total": 8.0,
        "cpu_reserved": 0.0,
        "memory_total_mb": 1024,
        "memory_reserved_mb": 0,
        "disk_total_mb": 1024,
        "disk_reserved_mb": 0,
        "active_jobs": 0,
        "completed_jobs": 3,
        "failed_jobs": 0,
        "timed_out_jobs": 0,
        "disputes_lost": 0,
        "reputation": 0.9,
        "earned": "1.500000",
        "a_field_added_later": "ignored",
    }


def serve(sent: list[tuple[str, str, Any]]) -> AdminClient:
    """An admin client of a coordinator that records each request and answers in kind."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent.append((request.method, request.url.path, body))
        path = request.url.path
        if path == "/v1/admin/providers":
            return httpx.Response(200, json=[provider()])
        if path.endswith("/ban"):
            return httpx.Response(200, json=provider(banned=True))
        if path.endswith("/unban"):
            return httpx.Response(200, json=provider())
        if path == "/v1/admin/stats":
            return httpx.Response(200, json=STATS)
        if path in ("/v1/admin/fee", "/v1/admin/pause"):
            return httpx.Response(200, json={"tx_hash": "0xab", "chain": CHAIN, "paused": True})
        return httpx.Response(404, json={"detail": "no", "code": "not_found"})

    return AdminClient("http://coordinator", "admin", transport=httpx.MockTransport(answer))


def test_admin_answers_are_protocol_models() -> None:
    sent: list[tuple[str, str, Any]] = []
    with serve(sent) as admin:
        listed = admin.providers(online=True)
        assert [type(p) for p in listed] == [ProviderView]
        assert listed[0].earned == Decimal("1.5") and listed[0].gpus == [{"name": "H100"}]
        banned = admin.ban("prov_1", "flaky")
        assert isinstance(banned, ProviderView) and banned.banned
        assert not admin.unban("prov_1").banned
        stats = admin.stats()
        assert isinstance(stats, MarketStats) and stats.utilization == 0.1875
        change = admin.set_fee(300)
        assert isinstance(change, ChainChange) and change.chain.fee_bps == 300
        assert admin.set_paused(True).paused
    assert sent == [
        ("GET", "/v1/admin/providers", None),
        ("POST", "/v1/admin/providers/prov_1/ban", {"reason": "flaky"}),
        ("POST", "/v1/admin/providers/prov_1/unban", None),
        ("GET", "/v1/admin/stats", None),
        ("POST", "/v1/admin/fee", {"fee_bps": 300}),  # no burn_bps: the share is kept
        ("POST", "/v1/admin/pause", {"paused": True}),
    ]


def test_values_are_left_for_the_coordinator_to_judge() -> None:
    """A fee over the cap is sent as given: the coordinator's 422 names the field, as for
    every other request, rather than a client-side validation error."""
    sent: list[tuple[str, str, Any]] = []
    with serve(sent) as admin:
        admin.set_fee(5000, burn_bps=100)
    assert sent == [("POST", "/v1/admin/fee", {"fee_bps": 5000, "burn_bps": 100})]
