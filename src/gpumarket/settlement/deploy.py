"""Deploying the token and the market to any EVM JSON-RPC endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.errors import SettlementError
from gpumarket.settlement.artifacts import load_artifact
from gpumarket.settlement.contracts import Deployment, Market, token_contract

DEFAULT_TERMS = {
    "fee_bps": 250,
    "burn_bps": 2000,
    "slash_share_bps": 5000,
    "window": 3600,
    "min_stake": 1_000_000,  # the floor a result locks: 1 token at 6 decimals
    "challenge_bond": 10_000_000,
    "stake_multiple": 20,  # a result locks max(min_stake, 20 x its amount)
    "verify_window": 172_800,  # a verifier may extend a job's window once, by up to two days
    "premium_bps": 1000,  # a sampled job's developer pays 10% of its amount into the pool
}
"""The market's terms at deployment (``Terms`` in the contract, in its field order)."""

TERMS_FIELDS = (
    "fee_bps",
    "burn_bps",
    "slash_share_bps",
    "window",
    "min_stake",
    "challenge_bond",
    "stake_multiple",
    "verify_window",
    "premium_bps",
)
"""The contract's ``Terms`` tuple, field by field."""

DEV_POOL_MICROS = 1_000_000_000
"""What a deployment with its own test stablecoin (a dev chain) seeds the verification pool
with: 1,000 tokens, so re-runs can be paid before any sampled job's premium arrives."""


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
    pool_micros: int = DEV_POOL_MICROS,
) -> Deployment:
    """Deploy the market (and a test stablecoin when ``token`` is None); ``deployer`` becomes
    admin, and holds the coordinator, arbiter, pauser and verifier roles unless ``roles`` names
    others (the verifier extends a sampled job's challenge window for its re-run, challenges
    without a bond and pays re-runners from the verification pool). With the test stablecoin
    (a dev chain: anyone may mint it), the deployer also mints ``pool_micros`` and funds the
    pool with them (``fundPool``), so re-runs can be paid before any premium arrives; a real
    token's pool starts empty (anyone may ``fundPool`` it)."""
    t = {**DEFAULT_TERMS, **(terms or {})}
    test_token = token is None
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
            tuple(t[name] for name in TERMS_FIELDS),
        ).build_transaction({"from": deployer.address}),
    )
    market = Market(w3, receipt["contractAddress"])
    wanted = {
        "COORDINATOR_ROLE": deployer.address,
        "ARBITER_ROLE": deployer.address,
        "PAUSER_ROLE": deployer.address,
        "VERIFIER_ROLE": deployer.address,
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
    if test_token and pool_micros > 0:
        seed_pool(w3, deployer, token, market, pool_micros)
    return Deployment(
        chain_id=w3.eth.chain_id,
        token=Web3.to_checksum_address(token),
        market=market.address,
        block=int(receipt["blockNumber"]),
    )


def seed_pool(w3: Web3, funder: LocalAccount, token: str, market: Market, micros: int) -> None:
    """Dev chains only (the test stablecoin, which anyone may mint): mint ``micros`` to
    ``funder``, approve the market and ``fundPool`` them into the verification pool."""
    coin = token_contract(w3, token)
    for call in (
        coin.functions.mint(funder.address, micros),
        coin.functions.approve(market.address, micros),
    ):
        send_signed(w3, funder, dict(call.build_transaction({"from": funder.address})))
    send_signed(
        w3,
        funder,
        {"to": market.address, "data": market.calldata("fundPool", micros), "gas": 100_000},
    )


def write_deployment(deployment: Deployment, path: Path, rpc_url: str | None = None) -> None:
    """Save the deployment file the coordinator and CLI read; with ``rpc_url``, the chain's
    RPC URL too, so the dev-chain commands reach the chain the file describes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = deployment.as_dict()
    if rpc_url is not None:
        data["rpc_url"] = rpc_url
    path.write_text(json.dumps(data, indent=2) + "\n")
