"""The outbox's store and keys without a chain: a nonce per entry with no gap, a repeated key
answered from the store, and a key whose transaction reverted on-chain tried again under the
next free key (a reverted transaction moved no money)."""

from __future__ import annotations

from pathlib import Path

from gpumarket.settlement.outbox import Signed, SqliteOutboxStore, TransactionSender

SENDER = "0x" + "ab" * 20


def signer(nonce: int) -> Signed:
    return Signed(raw=f"0xraw{nonce}", hash=f"0x{nonce:064x}")


def test_nonces_follow_the_store_and_never_fall_behind_the_chain(tmp_path: Path) -> None:
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite")
    first = store.reserve("a", SENDER, 7, "0xmarket", "0x01", signer)
    second = store.reserve("b", SENDER, 0, "0xmarket", "0x02", signer)  # the chain lags
    again = store.reserve("a", SENDER, 9, "0xmarket", "0x01", signer)  # a repeated key
    ahead = store.reserve("c", SENDER, 12, "0xmarket", "0x03", signer)  # someone else used it
    assert (first.nonce, second.nonce, again.nonce, ahead.nonce) == (7, 8, 7, 12)
    assert store.unconfirmed(SENDER) == ["a", "b", "c"] and store.pending() == 3


def test_a_key_that_reverted_on_chain_is_tried_again_under_the_next_key(tmp_path: Path) -> None:
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite")
    sender = TransactionSender.__new__(TransactionSender)  # no chain needed for the keys
    sender.store = store
    store.reserve("open:0x01", SENDER, 0, "0xmarket", "0x01", signer)
    assert sender._live_key("open:0x01") == "open:0x01"  # sent, not answered: the same key
    store.finish("open:0x01", "reverted", 30_000, 5, "InsufficientBalance")
    assert sender._live_key("open:0x01") == "open:0x01~1"
    store.reserve("open:0x01~1", SENDER, 0, "0xmarket", "0x01", signer)
    store.finish("open:0x01~1", "done", 60_000, 6, None)
    assert sender._live_key("open:0x01") == "open:0x01~1"  # done: its outcome answers
