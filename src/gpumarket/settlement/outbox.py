"""Sending transactions so that a process killed at any moment neither loses nor repeats one.

Every transaction is written to a durable outbox under a caller-chosen key, signed with its
nonce, *before* it is sent; it is marked done from its receipt. After a crash or an RPC outage,
:meth:`TransactionSender.resume` re-sends the very same signed bytes (same nonce, same hash),
which a node either accepts once or already has. A second ``submit`` with the same key returns
the first one's outcome. Nonces are chosen by the outbox store, not by the node.

Where the outbox lives is the caller's choice, through the small :class:`OutboxStore`
interface: the coordinator keeps it in its own database (shared by every replica, so the
nonce of each transaction is picked under that database's lock and no two replicas ever sign
the same nonce); :class:`SqliteOutboxStore` is the embedded one-file store for a single
process (tools and tests). This module knows nothing of the coordinator or its ORM.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from hexbytes import HexBytes
from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    Web3RPCError,
)

from gpumarket.errors import ContractReverted, SettlementError, Unreachable
from gpumarket.settlement.contracts import ErrorDecoder


@dataclass(frozen=True)
class Sent:
    """The outcome of one outbox entry (``status``: sent, done or reverted)."""

    key: str
    hash: str
    status: str
    gas_used: int | None
    block: int | None
    error: str | None


@dataclass(frozen=True)
class Signed:
    """A transaction signed for one nonce: the raw bytes to send and their hash."""

    raw: str
    hash: str


@dataclass(frozen=True)
class Entry:
    """Everything the outbox keeps about one transaction (what a resend needs)."""

    key: str
    sender: str
    nonce: int
    target: str
    data: str
    raw: str
    hash: str
    status: str
    gas_used: int | None = None
    block: int | None = None
    error: str | None = None

    def sent(self) -> Sent:
        """The caller's view of this entry."""
        return Sent(self.key, self.hash, self.status, self.gas_used, self.block, self.error)


class OutboxStore(Protocol):
    """Where a :class:`TransactionSender` keeps its entries. Implementations make
    :meth:`reserve` atomic across every process sharing the store: the nonce is chosen and the
    signed entry written in one transaction, under a lock on the sender."""

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, if any."""

    def reserve(
        self,
        key: str,
        sender: str,
        chain_nonce: int,
        target: str,
        data: str,
        sign: Callable[[int], Signed],
    ) -> Entry:
        """The entry under ``key``; when there is none, sign one with the next nonce of
        ``sender`` (never below ``chain_nonce``) and store it as ``sent`` before returning."""

    def finish(self, key: str, status: str, gas_used: int, block: int, error: str | None) -> None:
        """Record the receipt of ``key``'s transaction."""

    def unconfirmed(self, sender: str) -> list[str]:
        """Keys of ``sender``'s entries without a receipt, in nonce order."""

    def pending(self) -> int:
        """How many entries (of any sender) still await a receipt."""


SQLITE_SCHEMA = """
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

_SELECT = (
    "SELECT key, sender, nonce, target, data, raw, hash, status, gas_used, block, error "
    "FROM outbox "
)


class SqliteOutboxStore:
    """The outbox in one SQLite file, for a single process (command-line tools, tests)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SQLITE_SCHEMA)
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, if any."""
        row = self.db.execute(_SELECT + "WHERE key = ?", (key,)).fetchone()
        return Entry(*row) if row else None

    def reserve(
        self,
        key: str,
        sender: str,
        chain_nonce: int,
        target: str,
        data: str,
        sign: Callable[[int], Signed],
    ) -> Entry:
        """See :meth:`OutboxStore.reserve`; BEGIN IMMEDIATE serialises writers of the file."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                known = self.get(key)
                if known is not None:
                    self.db.execute("COMMIT")
                    return known
                (top,) = self.db.execute(
                    "SELECT MAX(nonce) FROM outbox WHERE sender = ?", (sender,)
                ).fetchone()
                nonce = max(chain_nonce, -1 if top is None else int(top) + 1)
                signed = sign(nonce)
                self.db.execute(
                    "INSERT INTO outbox (key, sender, nonce, target, data, raw, hash, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'sent', ?)",
                    (key, sender, nonce, target, data, signed.raw, signed.hash, time.time()),
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        entry = self.get(key)
        assert entry is not None
        return entry

    def finish(self, key: str, status: str, gas_used: int, block: int, error: str | None) -> None:
        """Record the receipt of ``key``'s transaction."""
        self.db.execute(
            "UPDATE outbox SET status = ?, gas_used = ?, block = ?, error = ? WHERE key = ?",
            (status, gas_used, block, error, key),
        )

    def unconfirmed(self, sender: str) -> list[str]:
        """Keys of ``sender``'s entries without a receipt, in nonce order."""
        rows = self.db.execute(
            "SELECT key FROM outbox WHERE status = 'sent' AND sender = ? ORDER BY nonce", (sender,)
        )
        return [key for (key,) in rows]

    def pending(self) -> int:
        """How many entries still await a receipt."""
        (count,) = self.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()
        return int(count)

    def entries(self) -> list[Entry]:
        """Every entry, oldest nonce first (to move a file outbox into another store)."""
        rows = self.db.execute(_SELECT + "ORDER BY sender, nonce")
        return [Entry(*row) for row in rows]


class TransactionSender:
    """Signs, records, sends and confirms transactions for one account."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        store: OutboxStore,
        errors: ErrorDecoder | None = None,
        receipt_timeout: float = 60,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.store = store
        self.errors = errors
        self.receipt_timeout = receipt_timeout
        self.chain_id = self._rpc(lambda: w3.eth.chain_id)

    def _rpc(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (RequestException, OSError) as exc:
            raise Unreachable(f"the chain's RPC endpoint is unreachable: {exc}") from exc

    def get(self, key: str) -> Sent | None:
        """What the outbox knows about ``key``."""
        entry = self.store.get(key)
        return entry.sent() if entry else None

    def submit(self, key: str, target: str, data: str, gas: int | None = None) -> Sent:
        """Send ``data`` to ``target`` once under ``key`` and wait for its receipt.

        A revert found while estimating is raised as :class:`ContractReverted` and nothing is
        recorded; a revert on-chain is recorded and raised the same way. A key whose
        transaction reverted on-chain moved no money: asking again tries again (under the next
        free ``key~N``), so a refusal the caller has since fixed (a deposit topped up) can
        succeed."""
        key = self._live_key(key)
        if self.store.get(key) is None:
            gas = gas or self._estimate(target, data)
            # read outside the store's lock: the node's count only matters when someone else
            # used the key (the outbox's own count is ahead of it otherwise)
            address = self.account.address
            chain_nonce = int(
                self._rpc(lambda: self.w3.eth.get_transaction_count(address, "pending"))
            )
            fee = int(self._rpc(lambda: self.w3.eth.gas_price))
            self.store.reserve(
                key,
                self.account.address,
                chain_nonce,
                target,
                data,
                lambda nonce: self._sign(target, data, nonce, gas, fee),
            )
        return self._confirm(key)

    def _live_key(self, key: str) -> str:
        """``key``, or the first ``key~N`` whose entry did not revert on-chain."""
        live, attempt = key, 0
        while (entry := self.store.get(live)) is not None and entry.status == "reverted":
            attempt += 1
            live = f"{key}~{attempt}"
        return live

    def _sign(self, target: str, data: str, nonce: int, gas: int, fee: int) -> Signed:
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
        return Signed("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex())

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
        entry = self.store.get(key)
        assert entry is not None
        if entry.status == "sent":
            self._send_raw(entry.raw, entry.hash)
            receipt = self._wait(entry.hash)
            status = "done" if receipt["status"] == 1 else "reverted"
            error = None if status == "done" else self._revert_reason(entry)
            self.store.finish(
                key, status, int(receipt["gasUsed"]), int(receipt["blockNumber"]), error
            )
            entry = self.store.get(key)
            assert entry is not None
        if entry.status == "reverted":
            raise ContractReverted(entry.error or "", raw=entry.hash)
        return entry.sent()

    def _send_raw(self, raw: str, tx_hash: str) -> None:
        try:
            self._rpc(lambda: self.w3.eth.send_raw_transaction(HexBytes(raw)))
        except (ValueError, Web3RPCError) as exc:  # the node already has it (a resend): fine
            text = str(exc).lower()
            if not any(s in text for s in ("already known", "nonce too low", "already imported")):
                raise SettlementError(f"the node refused transaction {tx_hash}: {exc}") from exc

    def _wait(self, tx_hash: str) -> Any:
        try:
            return self._rpc(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    HexStr(tx_hash), timeout=self.receipt_timeout, poll_latency=0.1
                )
            )
        except TimeExhausted:
            raise Unreachable(
                f"no receipt for {tx_hash} yet; it stays in the outbox and is confirmed on resume"
            ) from None

    def _revert_reason(self, entry: Entry) -> str:
        try:
            self.w3.eth.call(
                {"from": self.account.address, "to": entry.target, "data": HexStr(entry.data)}
            )
        except (ContractCustomError, ContractLogicError) as exc:
            if self.errors is not None:
                return self.errors.decode(getattr(exc, "data", None)).error
            return str(exc)
        return "reverted"

    def resume(self) -> list[Sent]:
        """Confirm (re-sending if needed) every entry a crash or an outage left unconfirmed."""
        results = []
        for key in self.store.unconfirmed(self.account.address):
            try:
                results.append(self._confirm(key))
            except ContractReverted:
                results.append(self.get(key))  # type: ignore[arg-type]
        return results

    def pending(self) -> int:
        """How many entries still await a receipt."""
        return self.store.pending()
