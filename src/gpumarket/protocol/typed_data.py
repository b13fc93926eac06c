"""EIP-712 typed data: what a developer's wallet signs for an order and a provider's for a
result claim, in the JSON form ``eth_signTypedData_v4`` takes (``model_dump(by_alias=True)``).

One definition for every signer (the SDK, the CLI, a browser wallet) and for the coordinator
that recovers the signer, so the digest each computes is the contract's ``orderDigest`` and
``resultDigest``. The type lists are fixed: a payload naming other types is refused rather than
signed, so no one can be led to sign a look-alike structure.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field, model_validator

from gpumarket.protocol.base import INT64_MAX, WireModel
from gpumarket.protocol.settlement import HEX32, PaymentRequest

DOMAIN_NAME: Final = "gpumarket"
"""The ``name`` of the market contract's EIP-712 domain."""
DOMAIN_VERSION: Final = "1"
"""The ``version`` of the market contract's EIP-712 domain."""
ADDRESS = r"^0x[0-9a-fA-F]{40}$"

Bytes32 = Annotated[str, Field(pattern=HEX32, description="32 bytes as 0x-prefixed hex")]
"""A ``bytes32`` value as wallets send it: ``0x`` and 64 hex digits."""
Uint64 = Annotated[
    int,
    Field(
        ge=0,
        le=INT64_MAX,
        description="a uint64 on-chain; kept within BIGINT, where the coordinator stores it",
    ),
]
"""A ``uint64`` value no larger than the coordinator's columns hold."""


class TypedDataField(WireModel):
    """One member of an EIP-712 struct type: its name and Solidity type."""

    name: str
    type: str


def _fields(*pairs: tuple[str, str]) -> list[TypedDataField]:
    return [TypedDataField(name=name, type=kind) for name, kind in pairs]


DOMAIN_TYPE = _fields(
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)
"""The ``EIP712Domain`` type: a signature is bound to one contract on one chain."""
ORDER_TYPE = _fields(
    ("jobId", "bytes32"),
    ("specHash", "bytes32"),
    ("maxPayment", "uint64"),
    ("deadline", "uint64"),
    ("nonce", "uint64"),
)
"""The contract's ``Order`` struct, in its member order (the order is part of the digest)."""
RESULT_TYPE = _fields(
    ("jobId", "bytes32"),
    ("resultHash", "bytes32"),
    ("amount", "uint64"),
)
"""The contract's ``Result`` struct, in its member order."""


class TypedDataDomain(WireModel):
    """The EIP-712 domain of the market contract: which contract, on which chain."""

    name: Literal["gpumarket"] = DOMAIN_NAME
    version: Literal["1"] = DOMAIN_VERSION
    chain_id: int = Field(alias="chainId", ge=0)
    verifying_contract: str = Field(alias="verifyingContract", pattern=ADDRESS)


class OrderMessage(WireModel):
    """A developer's order: the most this job may cost, and until when it may be opened."""

    job_id: Bytes32 = Field(alias="jobId")
    spec_hash: Bytes32 = Field(alias="specHash")
    max_payment: Uint64 = Field(alias="maxPayment", description="micro-units of the token")
    deadline: Uint64 = Field(description="unix time after which the unopened order is void")
    nonce: Uint64


class ResultMessage(WireModel):
    """A provider's result claim: the result it stands behind and the amount it claims."""

    job_id: Bytes32 = Field(alias="jobId")
    result_hash: Bytes32 = Field(alias="resultHash")
    amount: Uint64 = Field(description="micro-units of the token")


def _types(primary: str, members: list[TypedDataField]) -> dict[str, list[TypedDataField]]:
    """Fresh copies of the fixed type lists, so no payload shares (or alters) the constants."""
    return {
        "EIP712Domain": [f.model_copy() for f in DOMAIN_TYPE],
        primary: [f.model_copy() for f in members],
    }


def _check_types(
    types: dict[str, list[TypedDataField]], primary: str, members: list[TypedDataField]
) -> None:
    if types != {"EIP712Domain": DOMAIN_TYPE, primary: members}:
        raise ValueError(f"types must be exactly the market contract's EIP712Domain and {primary}")


class TypedData(WireModel):
    """What every typed-data payload shares: the domain, and its JSON form for a wallet."""

    domain: TypedDataDomain

    def eip712(self) -> dict[str, Any]:
        """The JSON object ``eth_signTypedData_v4`` (and eth-account's ``full_message``)
        takes: the EIP-712 member names, bytes32 values as hex."""
        return self.model_dump(mode="json", by_alias=True)


class OrderTypedData(TypedData):
    """The full typed data of an order, as a wallet signs it (``eth_signTypedData_v4``)."""

    types: dict[str, list[TypedDataField]] = Field(
        default_factory=lambda: _types("Order", ORDER_TYPE)
    )
    primary_type: Literal["Order"] = Field(default="Order", alias="primaryType")
    message: OrderMessage

    @model_validator(mode="after")
    def _fixed_types(self) -> OrderTypedData:
        _check_types(self.types, "Order", ORDER_TYPE)
        return self

    @classmethod
    def for_request(cls, request: PaymentRequest) -> OrderTypedData:
        """The order a coordinator's payment request asks the developer to sign, ready for a
        wallet that signs typed data itself (the SDK signs the same payload)."""
        return cls(
            domain=TypedDataDomain(chain_id=request.chain_id, verifying_contract=request.market),
            message=OrderMessage(
                job_id=request.chain_job_id,
                spec_hash=request.spec_hash,
                max_payment=request.max_payment_micros,
                deadline=request.deadline,
                nonce=request.nonce,
            ),
        )


class ResultTypedData(TypedData):
    """The full typed data of a provider's result claim, as its wallet signs it."""

    types: dict[str, list[TypedDataField]] = Field(
        default_factory=lambda: _types("Result", RESULT_TYPE)
    )
    primary_type: Literal["Result"] = Field(default="Result", alias="primaryType")
    message: ResultMessage

    @model_validator(mode="after")
    def _fixed_types(self) -> ResultTypedData:
        _check_types(self.types, "Result", RESULT_TYPE)
        return self
