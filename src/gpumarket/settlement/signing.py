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
from gpumarket.protocol.typed_data import DOMAIN_NAME as DOMAIN_NAME  # re-exported
from gpumarket.protocol.typed_data import DOMAIN_VERSION as DOMAIN_VERSION
from gpumarket.protocol.typed_data import (
    ORDER_TYPE,
    RESULT_TYPE,
    OrderMessage,
    OrderTypedData,
    ResultMessage,
    ResultTypedData,
    TypedData,
    TypedDataDomain,
)

ORDER_TYPES = {"Order": [f.model_dump() for f in ORDER_TYPE]}
"""The ``Order`` struct in eth-account's ``message_types`` form (built from the protocol's)."""
RESULT_TYPES = {"Result": [f.model_dump() for f in RESULT_TYPE]}
"""The ``Result`` struct in eth-account's ``message_types`` form (built from the protocol's)."""


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

    @classmethod
    def from_typed_data(cls, typed: OrderTypedData) -> Order:
        """The order a wallet's typed-data payload describes."""
        message = typed.message
        return cls(
            bytes.fromhex(message.job_id[2:]),
            bytes.fromhex(message.spec_hash[2:]),
            message.max_payment,
            message.deadline,
            message.nonce,
        )

    def as_tuple(self) -> tuple[bytes, bytes, int, int, int]:
        """The Solidity struct argument."""
        return (self.job_id, self.spec_hash, self.max_payment, self.deadline, self.nonce)

    def typed_data(self, chain_id: int, market: str) -> OrderTypedData:
        """The typed data a developer's wallet signs for this order on ``market``."""
        return OrderTypedData(
            domain=_domain(chain_id, market),
            message=OrderMessage(
                job_id="0x" + self.job_id.hex(),
                spec_hash="0x" + self.spec_hash.hex(),
                max_payment=self.max_payment,
                deadline=self.deadline,
                nonce=self.nonce,
            ),
        )


def _domain(chain_id: int, market: str) -> TypedDataDomain:
    return TypedDataDomain(chain_id=chain_id, verifying_contract=market)


def domain(chain_id: int, market: str) -> dict[str, Any]:
    """The EIP-712 domain: binds signatures to one contract on one chain."""
    return _domain(chain_id, market).model_dump(by_alias=True)


def result_typed_data(
    job_id: bytes, result: bytes, amount: int, chain_id: int, market: str
) -> ResultTypedData:
    """The typed data a provider's wallet signs to claim ``amount`` for ``result``."""
    return ResultTypedData(
        domain=_domain(chain_id, market),
        message=ResultMessage(
            job_id="0x" + job_id.hex(), result_hash="0x" + result.hex(), amount=amount
        ),
    )


def signable(typed: TypedData) -> SignableMessage:
    """The EIP-712 message eth-account signs or recovers from: its digest is the contract's
    ``orderDigest`` or ``resultDigest`` of the same payload."""
    return encode_typed_data(full_message=typed.eip712())


def _order_message(order: Order, chain_id: int, market: str) -> SignableMessage:
    return signable(order.typed_data(chain_id, market))


def _result_message(
    job_id: bytes, result: bytes, amount: int, chain_id: int, market: str
) -> SignableMessage:
    return signable(result_typed_data(job_id, result, amount, chain_id, market))


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


def result_hash(exit_code: int, output_hash: str | None, output_digest: str | None = None) -> bytes:
    """What a provider's result commits to: the exit code and the outputs' canonical manifest
    digest (two runs that write the same files name the same result), or, from a daemon that
    predates the digest, the archive's own hash. The coordinator recomputes it from the report,
    so a claim cannot name other outputs."""
    if output_digest is not None:
        return bytes(Web3.keccak(text=f"gpumarket-result:v2:{exit_code}:{output_digest}"))
    return bytes(Web3.keccak(text=f"gpumarket-result:{exit_code}:{output_hash or 'none'}"))
