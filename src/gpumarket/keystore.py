"""Wallets kept as encrypted eth-account keystores (the format geth and MetaMask use).

Every side keeps its key this way: a developer signs in and signs orders with one, a
provider is paid to one. So it lives here, outside ``provider/``, and needs only
eth-account: a plain ``pip install gpumarket`` (no extras) can create and open wallets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from gpumarket.errors import AuthenticationFailed, InvalidRequest


def create_wallet(path: Path, password: str) -> LocalAccount:
    """Create a new key and write it encrypted to ``path`` (never overwrites)."""
    if path.exists():
        raise InvalidRequest(f"{path} already exists; refusing to overwrite a wallet")
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(keystore, out)
    return account


def load_wallet(path: Path, password: str, password_env: str | None = None) -> LocalAccount:
    """Decrypt the keystore at ``path``. ``password_env`` names the variable the password
    was read from: an empty password that fails says to set it, not that it is wrong."""
    try:
        keystore = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidRequest(
            f"no wallet at {path}; create one with `gpumarket wallet new --path {path}`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{path} is not a keystore file") from exc
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as exc:
        if not password and password_env and password_env not in os.environ:
            raise AuthenticationFailed(
                f"cannot decrypt the wallet at {path}: no password was given; set the "
                f"environment variable {password_env}"
            ) from exc
        raise AuthenticationFailed(f"cannot decrypt the wallet at {path}: wrong password") from exc
    account: LocalAccount = Account.from_key(key)
    return account


def load_or_create_wallet(
    path: Path, password: str, password_env: str | None = None
) -> tuple[LocalAccount, bool]:
    """The wallet at ``path``, created first if absent; True when it was just created
    (``password_env``: as for :func:`load_wallet`)."""
    if path.exists():
        return load_wallet(path, password, password_env), False
    return create_wallet(path, password), True
