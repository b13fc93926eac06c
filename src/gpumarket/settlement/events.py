"""Following the market's events in chain order, with their block and transaction hash."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gpumarket.settlement.contracts import Market, event_topics


@dataclass(frozen=True)
class ChainEvent:
    """One decoded event."""

    name: str
    args: dict[str, Any]
    block: int
    tx_hash: str
    log_index: int


class EventReader:
    """Reads the market's events from ``from_block`` on; ``cursor`` is the next block to read,
    so a restarted reader resumes where it stopped."""

    def __init__(self, market: Market, from_block: int, confirmations: int = 0) -> None:
        self.market = market
        self.cursor = from_block
        self.confirmations = confirmations
        self._events = event_topics(market.abi)

    def poll(self, max_blocks: int = 5000) -> Iterator[ChainEvent]:
        """New events up to the latest (confirmed) block, oldest first."""
        head = self.market.w3.eth.block_number - self.confirmations
        if head < self.cursor:
            return
        to_block = min(head, self.cursor + max_blocks - 1)
        logs = self.market.w3.eth.get_logs(
            {"address": self.market.address, "fromBlock": self.cursor, "toBlock": to_block}
        )
        for log in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
            name = self._events.get(bytes(log["topics"][0]))
            if name is None:
                continue
            decoded = getattr(self.market.contract.events, name)().process_log(log)
            yield ChainEvent(
                name=name,
                args=dict(decoded["args"]),
                block=int(log["blockNumber"]),
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                log_index=int(log["logIndex"]),
            )
        self.cursor = to_block + 1
