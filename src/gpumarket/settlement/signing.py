"""EIP-712 signatures for orders (developers) and results (providers), with eth-account's
typed-data support: the same digests the contract computes in ``orderDigest`` and
``resultDigest``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.protocol import PaymentRequest

DOMAIN_NAME = "gpumarket"
DOMAIN_VERSION = "1"

ORDER_TYPES = {
    "Order": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "specHash", "type": "bytes32"},
        {"name": "maxPayment", "type": "uint64"},
        {"name": "deadline", "type": "uint64"},
        {"name": "nonce", "type": "uint64"},
    ]
}
RESULT_TYPES = {
    "Result": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "resultHash", "type": "bytes32"},
        {"name": "amount", "type": "uint64"},
    ]
}


@dataclass(frozen=True)
class Order:
    """What a developer signs: the most this job may cost, and until when it may run."""

    job_id: bytes
    spec_hash: bytes
    max_payment: int
    deadline: int
    nonce: int

    @classmethod
    def from_request(cls, request: PaymentRequest) -> Order:
        """The order a coordinator's payment request asks the developer to sign."""
        return cls(
            bytes.fromhex(request.chain_job_id[2:]),
            bytes.fromhex(request.spec_hash[2:]),
            request.max_payment_micros,
            request.deadline,
            request.nonce,
        )

    def as_tuple(self) -> tuple[bytes, bytes, int, int, int]:
        """The Solidity struct argument."""
        return (self.job_id, self.spec_hash, self.max_payment, self.deadline, self.nonce)


def domain(chain_id: int, market: str) -> dict[str, Any]:
    """The EIP-712 domain: binds signatures to one contract on one chain."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": market,
    }


def _order_message(order: Order, chain_id: int, market: str) -> SignableMessage:
    message = {
        "jobId": order.job_id,
        "specHash": order.spec_hash,
        "maxPayment": order.max_payment,
        "deadline": order.deadline,
        "nonce": order.nonce,
    }
    return encode_typed_data(domain(chain_id, market), ORDER_TYPES, message)


def _result_message(
    job_id: bytes, result: bytes, amount: int, chain_id: int, market: str
) -> SignableMessage:
    message = {"jobId": job_id, "resultHash": result, "amount": amount}
    return encode_typed_data(domain(chain_id, market), RESULT_TYPES, message)


def sign_order(account: LocalAccount, order: Order, chain_id: int, market: str) -> bytes:
    """The developer's signature over ``order``."""
    signable = _order_message(order, chain_id, market)
    return bytes(account.sign_message(signable).signature)


def sign_result(
    account: LocalAccount,
    job_id: bytes,
    result_hash: bytes,
    amount: int,
    chain_id: int,
    market: str,
) -> bytes:
    """The provider's signature over its result and the amount it claims."""
    signable = _result_message(job_id, result_hash, amount, chain_id, market)
    return bytes(account.sign_message(signable).signature)


def order_signer(signature: bytes, order: Order, chain_id: int, market: str) -> str:
    """The address that signed ``order`` (checked before relaying it)."""
    signable = _order_message(order, chain_id, market)
    return str(Account.recover_message(signable, signature=signature))


def result_signer(
    signature: bytes, job_id: bytes, result: bytes, amount: int, chain_id: int, market: str
) -> str:
    """The address that signed a result claim."""
    signable = _result_message(job_id, result, amount, chain_id, market)
    return str(Account.recover_message(signable, signature=signature))


# half the order of secp256k1: a canonical signature's s is at most this (EIP-2)
_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def compact(signature: bytes) -> tuple[bytes, bytes]:
    """The EIP-2098 form ``(r, vs)`` the market contract takes: 64 bytes of calldata where a
    ``bytes`` argument takes 160. Wallets sign in the usual 65-byte form (r, s, v); this is
    only how it travels to the contract. Raises ``ValueError`` for anything but a 65-byte
    signature with v 27/28 (or 0/1) and a low s."""
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes (r, s, v), not {len(signature)}")
    s, v = int.from_bytes(signature[32:64], "big"), signature[64]
    v = v + 27 if v < 27 else v
    if v not in (27, 28) or s > _HALF_N:
        raise ValueError("not a canonical signature (v must be 27 or 28, s in the lower half)")
    return signature[:32], (s | ((v - 27) << 255)).to_bytes(32, "big")


def job_id_bytes(job_id: str) -> bytes:
    """The on-chain id of a coordinator job id (keccak-256 of its text)."""
    return bytes(Web3.keccak(text=job_id))


def result_hash(exit_code: int, output_hash: str | None) -> bytes:
    """What a provider's result commits to: the exit code and the outputs' content hash. The
    coordinator recomputes it from the report, so a claim cannot name other outputs."""
    return bytes(Web3.keccak(text=f"gpumarket-result:{exit_code}:{output_hash or 'none'}"))
