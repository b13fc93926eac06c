"""The daemon's keystore: an empty password read from an unset variable says to set it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumarket.errors import AuthenticationFailed
from gpumarket.provider.wallet import create_wallet, load_or_create_wallet


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
