"""Wire models of on-chain settlement: where the market lives, what a developer signs, and the
on-chain steps a job view lists.

Amounts are integer micro-units, exactly what the contract stores, so no side converts a figure
that ends up in a signature.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from gpumarket.protocol.base import ResponseModel, WireModel

HEX32 = r"^0x[0-9a-fA-F]{64}$"


class ChainState(StrEnum):
    """Where a job's money stands on the settlement ledger, beside its lifecycle state.

    The allowed moves are the coordinator's ``chain_state.ALLOWED`` table; each one is recorded
    in the job's events with its transaction."""

    AWAITING_ORDER = "awaiting_order"
    """Submitted; the developer has not signed the order that funds it yet."""
    VOID = "void"
    """Cancelled before its order was opened: no money was ever locked."""
    OPEN = "open"
    """The escrow is locked in the contract."""
    CLAIM_DUE = "claim_due"
    """Cancelled while running: waits for the provider's claim for the seconds it ran."""
    CANCELLING = "cancelling"
    """The escrow is to be returned (cancel, expiry, failure); the refunder sends it."""
    COMMITTED = "committed"
    """The provider's claim is committed; its challenge window runs."""
    DISPUTED = "disputed"
    """Challenged; the payment is frozen until the arbiter rules."""
    SETTLED = "settled"
    """Paid out to the provider and the treasury (the rest back to the developer)."""
    REFUNDED = "refunded"
    """Ruled against the provider: the escrow went back, the stake was slashed."""
    CANCELLED = "cancelled"
    """The whole escrow went back to the developer's deposit."""


SIGNATURE = r"^0x[0-9a-fA-F]{130}$"


class ChainInfo(ResponseModel):
    """The market contract a coordinator settles on, and the terms new jobs get. A result
    locks max(min_stake_micros, stake_multiple x its amount) of its provider's stake until the
    job settles, and a lost challenge slashes that."""

    chain_id: int
    rpc_url: str = Field(description="JSON-RPC endpoint wallets can use for deposits and stakes")
    market: str
    token: str
    token_decimals: int = 6
    fee_bps: int
    burn_bps: int
    window_seconds: int
    min_stake_micros: int = Field(description="the floor of the stake a result locks")
    challenge_bond_micros: int
    stake_multiple: int = Field(
        default=0,
        description="a result locks this many times its amount when that exceeds the floor "
        "(0: the floor alone)",
    )
    verify_window_seconds: int = Field(
        default=0,
        description="the most a verifier may extend a job's challenge window, once, to re-run it",
    )
    premium_bps: int = Field(
        default=0,
        description="a sampled (verified) job's developer pays this share of its amount into the "
        "verification pool when it settles, at most what the escrow holds beyond the amount",
    )


def stake_to_lock(amount_micros: int, floor_micros: int, multiple: int) -> int:
    """The stake a result claiming ``amount_micros`` locks until its job settles, and what a
    lost challenge slashes: ``max(floor_micros, amount_micros * multiple)``, as the market
    contract computes it.

    A flat stake made a large job as cheap to cheat on as a small one: slashing the same
    minimum whatever the payment, a provider could claim far more than it stood to lose. The
    lock scales with the work so that cheating never pays more than it risks; the floor keeps
    small jobs from locking next to nothing. A ``multiple`` of 0 is the flat floor alone. The
    product is exact (no 64-bit wrap): a lock the provider's free stake cannot cover is
    refused on-chain (``StakeTooLow``), and callers compare with the free stake the same way.
    """
    if amount_micros < 0 or floor_micros < 0 or multiple < 0:
        raise ValueError("stake_to_lock takes amounts and a multiple of zero or more")
    return max(floor_micros, amount_micros * multiple)


class PaymentRequest(ResponseModel):
    """The order a developer signs (EIP-712 ``Order``) so the coordinator can open the job's
    escrow. The SDK checks ``spec_hash`` and ``max_payment_micros`` against the spec it sent
    before signing, so a coordinator cannot make it sign for more."""

    chain_id: int
    market: str
    chain_job_id: str = Field(pattern=HEX32)
    spec_hash: str = Field(pattern=HEX32)
    max_payment_micros: int = Field(ge=0)
    deadline: int = Field(description="unix time after which the unopened order is void")
    nonce: int = Field(ge=0)


class OrderSignature(WireModel):
    """The developer's signature over the job's :class:`PaymentRequest`."""

    signature: str = Field(pattern=SIGNATURE)


class ResultClaim(WireModel):
    """What a provider signs (EIP-712 ``Result``) when chain settlement is on: the result it
    stands behind and the amount it claims for it."""

    amount_micros: int = Field(ge=0)
    result_hash: str = Field(pattern=HEX32)
    signature: str = Field(pattern=SIGNATURE)


class ChainStep(ResponseModel):
    """One on-chain transaction of a job (open, commit, challenge, resolve, finalize, cancel)."""

    step: str
    tx_hash: str
    block: int | None = None
    gas_used: int | None = None
    at: datetime


class Receipt(ResponseModel):
    """Where a settled or refunded job's money went, from the contract's events."""

    paid: Decimal | None = Field(default=None, description="credited to the provider")
    fee: Decimal | None = Field(default=None, description="protocol fee (treasury + burn)")
    burned: Decimal | None = None
    refund: Decimal | None = Field(default=None, description="returned to the deposit")
