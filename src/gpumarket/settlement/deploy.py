"""Deploying the token and the market to any EVM JSON-RPC endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.errors import SettlementError
from gpumarket.settlement.artifacts import load_artifact
from gpumarket.settlement.contracts import Deployment, Market

DEFAULT_TERMS = {
    "fee_bps": 250,
    "burn_bps": 2000,
    "slash_share_bps": 5000,
    "window": 3600,
    "min_stake": 100_000_000,
    "challenge_bond": 10_000_000,
}


def send_signed(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    """Sign ``tx`` with ``account``, send it and wait for a successful receipt (deploy-time
    helper; the coordinator's running transactions go through the outbox instead)."""
    tx.setdefault("from", account.address)
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        tx["gasPrice"] = w3.eth.gas_price
    tx["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
    tx["chainId"] = w3.eth.chain_id
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    if receipt["status"] != 1:
        raise SettlementError(f"deployment transaction {receipt['transactionHash'].hex()} failed")
    return receipt


def deploy(
    w3: Web3,
    deployer: LocalAccount,
    token: str | None = None,
    treasury: str | None = None,
    terms: dict[str, int] | None = None,
    roles: dict[str, str] | None = None,
) -> Deployment:
    """Deploy the market (and a test stablecoin when ``token`` is None); ``deployer`` becomes
    admin, and holds the coordinator, arbiter and pauser roles unless ``roles`` names others."""
    t = {**DEFAULT_TERMS, **(terms or {})}
    if token is None:
        artifact = load_artifact("TestStablecoin")
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        token = send_signed(
            w3, deployer, factory.constructor().build_transaction({"from": deployer.address})
        )["contractAddress"]
    artifact = load_artifact("GpuMarket")
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = send_signed(
        w3,
        deployer,
        factory.constructor(
            token,
            deployer.address,
            treasury or deployer.address,
            (
                t["fee_bps"],
                t["burn_bps"],
                t["slash_share_bps"],
                t["window"],
                t["min_stake"],
                t["challenge_bond"],
            ),
        ).build_transaction({"from": deployer.address}),
    )
    market = Market(w3, receipt["contractAddress"])
    wanted = {
        "COORDINATOR_ROLE": deployer.address,
        "ARBITER_ROLE": deployer.address,
        "PAUSER_ROLE": deployer.address,
        **(roles or {}),
    }
    for role, holder in wanted.items():
        role_id = market.view(role)
        send_signed(
            w3,
            deployer,
            {"to": market.address, "data": market.calldata("grantRole", role_id, holder)}
            | {"gas": 100_000},
        )
    assert token is not None
    return Deployment(
        chain_id=w3.eth.chain_id,
        token=Web3.to_checksum_address(token),
        market=market.address,
        block=int(receipt["blockNumber"]),
    )


def write_deployment(deployment: Deployment, path: Path, rpc_url: str | None = None) -> None:
    """Save the deployment file the coordinator and CLI read; with ``rpc_url``, the chain's
    RPC URL too, so the dev-chain commands reach the chain the file describes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = deployment.as_dict()
    if rpc_url is not None:
        data["rpc_url"] = rpc_url
    path.write_text(json.dumps(data, indent=2) + "\n")
