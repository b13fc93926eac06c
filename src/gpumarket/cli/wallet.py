"""``gpumarket wallet ...``: create and inspect encrypted keystore wallets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gpumarket.cli.output import JsonOption, emit
from gpumarket.provider.config import DEFAULT_HOME

app = typer.Typer(
    help="Create wallets (encrypted eth-account keystores) and move money in and out of the "
    "market.",
    no_args_is_help=True,
)

PathOption = Annotated[Path, typer.Option("--path", help="Keystore file.")]
PasswordEnv = Annotated[
    str, typer.Option("--password-env", help="Environment variable holding the keystore password.")
]


def password_from(env: str, confirm: bool, path: Path) -> str:
    """The password from ``env``, or asked for on the terminal (see ``wallet_password``)."""
    from gpumarket.cli.chainops import wallet_password

    return wallet_password(env, path, confirm)


@app.command()
def new(
    path: PathOption = DEFAULT_HOME / "wallet.json",
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
    as_json: JsonOption = False,
) -> None:
    """Create a wallet (refuses to overwrite one)."""
    from gpumarket.keystore import create_wallet

    account = create_wallet(path.expanduser(), password_from(password_env, True, path))
    emit(
        as_json,
        {"address": account.address, "path": str(path)},
        f"created wallet {account.address} in {path}",
    )


@app.command()
def show(
    path: PathOption = DEFAULT_HOME / "wallet.json",
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
    as_json: JsonOption = False,
) -> None:
    """Print the wallet's address (decrypting it proves the password)."""
    from gpumarket.keystore import load_wallet

    account = load_wallet(path.expanduser(), password_from(password_env, False, path))
    emit(as_json, {"address": account.address, "path": str(path)}, account.address)


CoordinatorOption = Annotated[
    str | None,
    typer.Option(
        "--coordinator",
        envvar="GPUMARKET_COORDINATOR",
        help="Coordinator whose market to use (default: your login profile).",
    ),
]


def _wallet_for(path: Path | None, password_env: str, coordinator: str | None) -> Any:
    from gpumarket.cli.chainops import market_wallet, open_wallet
    from gpumarket.cli.profile import load_profile

    profile = load_profile(coordinator)
    account = open_wallet(path or profile.keystore(), password_env)
    return market_wallet(profile.coordinator, account)


@app.command()
def balance(
    path: Annotated[Path | None, typer.Option("--path", help="Keystore file.")] = None,
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens in the wallet, and its deposit, earnings and stake in the market."""
    balances = _wallet_for(path, password_env, coordinator).balances()
    if as_json:
        typer.echo(json.dumps(balances.as_dict(), indent=2))
        return
    shown = balances.as_dict()
    typer.echo(f"wallet {shown['address']}")
    for name in ("wallet", "deposit", "earnings", "stake", "locked_stake", "unstaking"):
        typer.echo(f"  {name.replace('_', ' '):<13}{shown[name]:>18}")


@app.command()
def deposit(
    amount: Annotated[str, typer.Argument(help="Tokens to deposit, e.g. 25 or 2.5.")],
    path: Annotated[Path | None, typer.Option("--path", help="Keystore file.")] = None,
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move tokens from the wallet into your market deposit, which funds your jobs' escrow."""
    from gpumarket.cli.chainops import parse_amount

    micros = parse_amount(amount)
    tx = _wallet_for(path, password_env, coordinator).deposit(micros)
    emit(as_json, {"deposited": amount, "tx_hash": tx}, f"deposited {amount} (tx {tx})")


@app.command()
def withdraw(
    amount: Annotated[
        str | None,
        typer.Argument(
            help="Tokens to take back to the wallet [default: everything you own in the "
            "market: free deposit and earnings]."
        ),
    ] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Keystore file.")] = None,
    password_env: PasswordEnv = "GPUMARKET_WALLET_PASSWORD",  # noqa: S107 - a variable name
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take your money in the market back to the wallet: free deposit (not held in a job's
    escrow) and earnings (a won dispute's bond and reward, a provider's pay); works while
    paused. Without AMOUNT, all of both; with it, the deposit first (earnings come out whole)."""
    from gpumarket.cli.chainops import parse_amount
    from gpumarket.protocol import from_micros

    micros = None if amount in (None, "all") else parse_amount(str(amount))
    done = _wallet_for(path, password_env, coordinator).withdraw_all(micros)
    total, deposit, earnings = (
        str(from_micros(done.total)),
        str(from_micros(done.deposit)),
        str(from_micros(done.earnings)),
    )
    emit(
        as_json,
        {
            "withdrew": total,
            "from_deposit": deposit,
            "from_earnings": earnings,
            "tx_hashes": done.tx_hashes,
        },
        f"withdrew {total} ({deposit} from the deposit, {earnings} in earnings; "
        f"tx {', '.join(done.tx_hashes)})",
    )
