"""Sending transactions so that a process killed at any moment neither loses nor repeats one.

Every transaction is written to a durable outbox (SQLite, one file) under a caller-chosen key,
signed with its nonce, *before* it is sent; it is marked done from its receipt. After a crash or
an RPC outage, :meth:`TransactionSender.resume` re-sends the very same signed bytes (same nonce,
same hash), which a node either accepts once or already has. A second ``submit`` with the same
key returns the first one's outcome. Nonces are managed here, not by the node.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from hexbytes import HexBytes
from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)

from gpumarket.errors import ContractReverted, SettlementError, TransportError
from gpumarket.settlement.contracts import ErrorDecoder

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    target TEXT NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    hash TEXT NOT NULL,
    status TEXT NOT NULL,          -- sent | done | reverted
    gas_used INTEGER,
    block INTEGER,
    error TEXT,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_sender_nonce ON outbox (sender, nonce);
"""


@dataclass(frozen=True)
class Sent:
    """The outcome of one outbox entry."""

    key: str
    hash: str
    status: str
    gas_used: int | None
    block: int | None
    error: str | None


class TransactionSender:
    """Signs, records, sends and confirms transactions for one account."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        outbox_path: Path,
        errors: ErrorDecoder | None = None,
        receipt_timeout: float = 60,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.errors = errors
        self.receipt_timeout = receipt_timeout
        outbox_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(outbox_path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.chain_id = self._rpc(lambda: w3.eth.chain_id)

    def _rpc(self, call: Any) -> Any:
        try:
            return call()
        except (RequestException, OSError) as exc:
            raise TransportError(f"the chain's RPC endpoint is unreachable: {exc}") from exc

    def get(self, key: str) -> Sent | None:
        """What the outbox knows about ``key``."""
        row = self.db.execute(
            "SELECT key, hash, status, gas_used, block, error FROM outbox WHERE key = ?", (key,)
        ).fetchone()
        return Sent(*row) if row else None

    def _next_nonce(self) -> int:
        chain = self._rpc(
            lambda: self.w3.eth.get_transaction_count(self.account.address, "pending")
        )
        row = self.db.execute(
            "SELECT MAX(nonce) FROM outbox WHERE sender = ?", (self.account.address,)
        ).fetchone()
        local = -1 if row[0] is None else int(row[0])
        return max(int(chain), local + 1)

    def submit(self, key: str, target: str, data: str, gas: int | None = None) -> Sent:
        """Send ``data`` to ``target`` once under ``key`` and wait for its receipt.

        A revert found while estimating is raised as :class:`ContractReverted` and nothing is
        recorded; a revert on-chain is recorded and raised the same way."""
        with self._lock:
            known = self.get(key)
            if known is None:
                gas = gas or self._estimate(target, data)
                nonce = self._next_nonce()
                fee = self._rpc(lambda: self.w3.eth.gas_price)
                tx = {
                    "from": self.account.address,
                    "to": Web3.to_checksum_address(target),
                    "data": data,
                    "nonce": nonce,
                    "gas": gas,
                    "chainId": self.chain_id,
                    "maxFeePerGas": fee * 2,
                    "maxPriorityFeePerGas": min(fee, 10**9),
                    "value": 0,
                }
                signed = self.account.sign_transaction(tx)
                raw = "0x" + bytes(signed.raw_transaction).hex()
                tx_hash = "0x" + bytes(signed.hash).hex()
                self.db.execute(  # durable before it leaves this process
                    "INSERT INTO outbox (key, sender, nonce, target, data, raw, hash, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'sent', ?)",
                    (key, self.account.address, nonce, target, data, raw, tx_hash, time.time()),
                )
        return self._confirm(key)

    def _estimate(self, target: str, data: str) -> int:
        try:
            estimate = self._rpc(
                lambda: self.w3.eth.estimate_gas(
                    {
                        "from": self.account.address,
                        "to": Web3.to_checksum_address(target),
                        "data": HexStr(data),
                    }
                )
            )
        except (ContractCustomError, ContractLogicError) as exc:
            if self.errors is not None:
                raise self.errors.decode(getattr(exc, "data", None)) from exc
            raise SettlementError(f"the transaction would revert: {exc}") from exc
        return int(estimate * 1.25) + 10_000

    def _confirm(self, key: str) -> Sent:
        row = self.db.execute(
            "SELECT raw, hash, status FROM outbox WHERE key = ?", (key,)
        ).fetchone()
        raw, tx_hash, status = row
        if status == "sent":
            self._send_raw(raw, tx_hash)
            receipt = self._wait(tx_hash)
            status = "done" if receipt["status"] == 1 else "reverted"
            error = None if status == "done" else self._revert_reason(key)
            self.db.execute(
                "UPDATE outbox SET status = ?, gas_used = ?, block = ?, error = ? WHERE key = ?",
                (status, int(receipt["gasUsed"]), int(receipt["blockNumber"]), error, key),
            )
        sent = self.get(key)
        assert sent is not None
        if sent.status == "reverted":
            raise ContractReverted(sent.error or "", raw=sent.hash)
        return sent

    def _send_raw(self, raw: str, tx_hash: str) -> None:
        try:
            self._rpc(lambda: self.w3.eth.send_raw_transaction(HexBytes(raw)))
        except (ValueError, Web3RPCError) as exc:  # the node already has it (a resend): fine
            text = str(exc).lower()
            if not any(s in text for s in ("already known", "nonce too low", "already imported")):
                raise SettlementError(f"the node refused transaction {tx_hash}: {exc}") from exc

    def _wait(self, tx_hash: str) -> Any:
        deadline = time.monotonic() + self.receipt_timeout
        while True:
            try:
                return self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexStr(tx_hash)))
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"no receipt for {tx_hash} yet; it stays in the "
                        "outbox and is confirmed on resume"
                    ) from None
                time.sleep(0.1)

    def _revert_reason(self, key: str) -> str:
        target, data = self.db.execute(
            "SELECT target, data FROM outbox WHERE key = ?", (key,)
        ).fetchone()
        try:
            self.w3.eth.call({"from": self.account.address, "to": target, "data": data})
        except (ContractCustomError, ContractLogicError) as exc:
            if self.errors is not None:
                return self.errors.decode(getattr(exc, "data", None)).error
            return str(exc)
        return "reverted"

    def resume(self) -> list[Sent]:
        """Confirm (re-sending if needed) every entry a crash or an outage left unconfirmed."""
        keys = [
            k
            for (k,) in self.db.execute(
                "SELECT key FROM outbox WHERE status = 'sent' AND sender = ? ORDER BY nonce",
                (self.account.address,),
            )
        ]
        results = []
        for key in keys:
            try:
                results.append(self._confirm(key))
            except ContractReverted:
                results.append(self.get(key))  # type: ignore[arg-type]
        return results

    def pending(self) -> int:
        """How many entries still await a receipt."""
        return int(
            self.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()[0]
        )
