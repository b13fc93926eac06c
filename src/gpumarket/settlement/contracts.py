"""Typed access to the deployed contracts: calldata, views, events and named revert errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from gpumarket.errors import ContractReverted
from gpumarket.settlement.artifacts import load_artifact


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"


def abi_type(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out), for signatures."""
    if param["type"].startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


class ErrorDecoder:
    """Maps a revert's 4-byte selector back to the contract's custom error and its arguments."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.errors: dict[bytes, dict[str, Any]] = {}
        for item in abi:
            if item["type"] == "error":
                self.errors[bytes(Web3.keccak(text=_signature(item)))[:4]] = item

    def decode(self, data: str | bytes | None) -> ContractReverted:
        """The typed error for revert data (``0x...``)."""
        raw = data if isinstance(data, bytes) else bytes.fromhex((data or "0x")[2:])
        item = self.errors.get(raw[:4])
        if item is None:
            return ContractReverted("", (), raw="0x" + raw.hex())
        values = abi_decode([abi_type(i) for i in item["inputs"]], raw[4:])
        return ContractReverted(item["name"], tuple(values), raw="0x" + raw.hex())


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on a chain (written by ``gpumarket chain deploy``)."""

    chain_id: int
    token: str
    market: str
    block: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the deployment file."""
        return {
            "chain_id": self.chain_id,
            "token": self.token,
            "market": self.market,
            "block": self.block,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        """Read a deployment file's JSON."""
        return cls(
            int(data["chain_id"]),
            Web3.to_checksum_address(data["token"]),
            Web3.to_checksum_address(data["market"]),
            int(data["block"]),
        )


class Market:
    """The GpuMarket contract at an address."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.abi = load_artifact("GpuMarket")["abi"]
        self.contract: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=self.abi
        )
        self.errors = ErrorDecoder(self.abi)
        self.address = self.contract.address

    def calldata(self, function: str, *args: Any) -> str:
        """ABI-encoded call of ``function``."""
        return str(self.contract.encode_abi(function, args=list(args)))

    def view(self, function: str, *args: Any) -> Any:
        """Call a view; a revert is raised as :class:`ContractReverted` by name."""
        try:
            return getattr(self.contract.functions, function)(*args).call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.errors.decode(getattr(exc, "data", None)) from exc


def token_contract(w3: Web3, address: str) -> Contract:
    """The payment token (an ERC-20; the test stablecoin's ABI covers what we use)."""
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=load_artifact("TestStablecoin")["abi"]
    )
