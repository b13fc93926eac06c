"""Signatures in the EIP-2098 compact form the market contract takes."""

from __future__ import annotations

import pytest
from eth_account import Account

from gpumarket.settlement.signing import (
    Order,
    compact,
    job_id_bytes,
    order_signer,
    sign_order,
)

MARKET = "0x" + "ab" * 20
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def expand(r: bytes, vs: bytes) -> bytes:
    """Back to (r, s, v), as the contract's ECDSA.recover(hash, r, vs) reads it."""
    word = int.from_bytes(vs, "big")
    s, v = word & ((1 << 255) - 1), (word >> 255) + 27
    return r + s.to_bytes(32, "big") + bytes([v])


def test_compact_keeps_the_signer_for_both_parities() -> None:
    account = Account.create()
    parities = set()
    for nonce in range(12):  # both values of v turn up
        order = Order(job_id_bytes(f"job-{nonce}"), b"\x01" * 32, 5, 2**40, nonce)
        signature = sign_order(account, order, 31337, MARKET)
        parities.add(signature[64])
        r, vs = compact(signature)
        assert len(r) == len(vs) == 32
        assert expand(r, vs) == signature
        assert order_signer(expand(r, vs), order, 31337, MARKET) == account.address
    assert parities == {27, 28}


def test_compact_refuses_what_it_cannot_carry() -> None:
    signature = sign_order(
        Account.create(), Order(job_id_bytes("j"), b"\x01" * 32, 5, 2**40, 1), 31337, MARKET
    )
    with pytest.raises(ValueError, match="65 bytes"):
        compact(signature[:64])
    with pytest.raises(ValueError, match="canonical"):
        compact(signature[:64] + bytes([29]))
    s = int.from_bytes(signature[32:64], "big")
    high_s = signature[:32] + (N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    with pytest.raises(ValueError, match="canonical"):
        compact(high_s)
    assert compact(signature[:64] + bytes([signature[64] - 27])) == compact(signature)
