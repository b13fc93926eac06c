"""The keystore every side keeps its wallet in: roundtrip, no overwrite, and an empty password
read from an unset variable says to set it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumarket.errors import AuthenticationFailed, InvalidRequest
from gpumarket.keystore import create_wallet, load_or_create_wallet, load_wallet


def test_wallet_keystore_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    account = create_wallet(path, "pw")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_wallet(path, "pw").address == account.address
    with pytest.raises(AuthenticationFailed, match="wrong password"):
        load_wallet(path, "nope")
    with pytest.raises(InvalidRequest, match="already exists"):
        create_wallet(path, "pw")
    again, created = load_or_create_wallet(path, "pw")
    assert again.address == account.address and not created
    with pytest.raises(InvalidRequest, match="gpumarket wallet new"):
        load_wallet(tmp_path / "none.json", "pw")


def test_an_unset_password_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wallet.json"
    create_wallet(path, "s3cret")
    monkeypatch.delenv("PROVIDER_PW", raising=False)
    with pytest.raises(AuthenticationFailed, match=r"no password was given; set .* PROVIDER_PW"):
        load_or_create_wallet(path, "", "PROVIDER_PW")
    monkeypatch.setenv("PROVIDER_PW", "typo")
    with pytest.raises(AuthenticationFailed, match="wrong password"):
        load_or_create_wallet(path, "typo", "PROVIDER_PW")
