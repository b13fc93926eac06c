"""The chain's gauges: an endpoint that does not answer reads as down, with no stale figures."""

from __future__ import annotations

from gpumarket.coordinator.services.chain import ChainHealth
from gpumarket.coordinator.services.stats import chain_families


def values(health: ChainHealth) -> dict[str, float]:
    return {name: samples[0][1] for name, _, samples in chain_families(health)}


def test_an_answering_chain_reports_block_and_gas_money() -> None:
    up = ChainHealth(up=True, block=42, sender_balance_wei=25 * 10**17, outbox_pending=3)
    assert values(up) == {
        "gpumarket_chain_up": 1.0,
        "gpumarket_chain_outbox_pending": 3.0,
        "gpumarket_chain_block": 42.0,
        "gpumarket_chain_sender_balance_eth": 2.5,
    }


def test_a_silent_chain_is_down_and_reports_no_block_or_balance() -> None:
    down = ChainHealth(up=False, block=None, sender_balance_wei=None, outbox_pending=1)
    assert values(down) == {"gpumarket_chain_up": 0.0, "gpumarket_chain_outbox_pending": 1.0}
