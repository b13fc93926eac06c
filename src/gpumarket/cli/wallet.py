"""``gpumarket wallet ...``: create and inspect encrypted keystore wallets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gpumarket.provider.config import DEFAULT_HOME

app = typer.Typer(
    help="Create and inspect wallets (encrypted eth-account keystores).", no_args_is_help=True
)

PathOption = Annotated[Path, typer.Option("--path", help="Keystore file.")]
PasswordEnv = Annotated[
    str, typer.Option("--password-env", help="Environment variable holding the keystore password.")
]


def password_from(env: str, confirm: bool) -> str:
    """The password from ``env``, or asked for on the terminal."""
    value = os.environ.get(env)
    if value is not None:
        return value
    return str(typer.prompt("Wallet password", hide_input=True, confirmation_prompt=confirm))


@app.command()
def new(
    path: PathOption = DEFAULT_HOME / "wallet.json",
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
) -> None:
    """Create a wallet (refuses to overwrite one)."""
    from gpumarket.provider.wallet import create_wallet

    account = create_wallet(path.expanduser(), password_from(password_env, confirm=True))
    typer.echo(f"created wallet {account.address} in {path}")


@app.command()
def show(
    path: PathOption = DEFAULT_HOME / "wallet.json",
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
) -> None:
    """Print the wallet's address (decrypting it proves the password)."""
    from gpumarket.provider.wallet import load_wallet

    account = load_wallet(path.expanduser(), password_from(password_env, confirm=False))
    typer.echo(account.address)
