"""What the wallet, provider and job commands share to act on the market contract: opening a
keystore, finding the coordinator's market, and reading token amounts typed by a person."""

from __future__ import annotations

import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gpumarket.errors import AuthenticationFailed, InvalidRequest

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from gpumarket.settlement.wallet import MarketWallet


def wallet_password(password_env: str, path: Path, confirm: bool = False) -> str:
    """The keystore password: from the variable ``password_env``, else asked on the terminal.
    Without a terminal (a script, CI) nobody can answer, so say which variable to set rather
    than try an empty password and report it wrong."""
    password = os.environ.get(password_env)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise AuthenticationFailed(
            f"the wallet {path} needs its password: set the environment variable "
            f"{password_env} (there is no terminal to ask it on)"
        )
    return str(typer.prompt(f"Password for {path}", hide_input=True, confirmation_prompt=confirm))


def open_wallet(path: Path, password_env: str) -> LocalAccount:
    """Decrypt the keystore at ``path``; the password comes from ``password_env`` or a prompt."""
    from gpumarket.keystore import load_wallet

    return load_wallet(path.expanduser(), wallet_password(password_env, path))


def market_wallet(
    coordinator: str, account: LocalAccount, rpc_url: str | None = None
) -> MarketWallet:
    """``account``'s handle on the market the coordinator at ``coordinator`` settles on, over
    ``rpc_url`` (or ``GPUMARKET_CHAIN_RPC_URL``, or the URL the coordinator advertises)."""
    from gpumarket.sdk.client import Client
    from gpumarket.settlement.wallet import MarketWallet

    with Client(coordinator) as anon:
        chain = anon.chain_info()
    if chain is None:
        raise InvalidRequest(
            f"the coordinator at {coordinator} keeps accounts off-chain: there is no market "
            "contract to pay into"
        )
    return MarketWallet(chain, account, rpc_url or os.environ.get("GPUMARKET_CHAIN_RPC_URL"))


def parse_amount(text: str) -> int:
    """A token amount typed as a decimal ("12.5") in micro-units."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"{text!r} is not an amount; write it like 12.5") from None
    if value <= 0 or value != value.quantize(Decimal("0.000001")):
        raise InvalidRequest(f"{text!r}: amounts are positive with at most 6 decimals")
    return int(value * 1_000_000)
