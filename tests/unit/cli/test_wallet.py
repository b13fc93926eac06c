"""`gpumarket wallet ...`: `withdraw` takes back everything a developer owns in the market (a
won dispute lands in earnings, not the deposit), and a wallet whose password variable is unset
says which variable to set when there is no terminal to ask on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpumarket.cli.main import typer_app
from gpumarket.keystore import create_wallet
from tests.unit.settlement.test_wallet import USD, FakeMarketWallet


@pytest.fixture
def market(monkeypatch: pytest.MonkeyPatch) -> FakeMarketWallet:
    """The market as a developer who won a dispute of 60 sees it: nothing in the deposit."""
    wallet = FakeMarketWallet(deposit=0, earnings=60 * USD)
    monkeypatch.setattr("gpumarket.cli.wallet._wallet_for", lambda *args: wallet)
    return wallet


def test_withdraw_without_an_amount_takes_the_dispute_winnings(market: FakeMarketWallet) -> None:
    result = CliRunner().invoke(typer_app, ["wallet", "withdraw"])
    assert result.exit_code == 0, result.output
    assert "withdrew 60.000000 (0.000000 from the deposit, 60.000000 in earnings" in result.output
    assert market.calls == [("withdrawEarnings", ())]


def test_withdraw_an_amount_as_json(market: FakeMarketWallet) -> None:
    result = CliRunner().invoke(typer_app, ["wallet", "withdraw", "60", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "withdrew": "60.000000",
        "from_deposit": "0.000000",
        "from_earnings": "60.000000",
        "tx_hashes": ["0x1"],
    }


def test_withdraw_help_says_it_takes_everything_by_default() -> None:
    help_text = CliRunner().invoke(typer_app, ["wallet", "withdraw", "--help"]).output
    assert "earnings" in help_text and "everything" in help_text


def _cli_without_terminal(
    *args: str, home: Path
) -> subprocess.CompletedProcess[str]:  # stdin is not a terminal, and the variable is unset
    env = {k: v for k, v in os.environ.items() if k != "GPUMARKET_WALLET_PASSWORD"}
    env["GPUMARKET_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "gpumarket.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.parametrize("command", [["wallet", "show", "--path"], ["login", "--wallet"]])
def test_an_unset_password_variable_without_a_terminal_is_named(
    tmp_path: Path, command: list[str]
) -> None:
    keystore = tmp_path / "wallet.json"
    create_wallet(keystore, "s3cret")
    result = _cli_without_terminal(*command, str(keystore), home=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "wrong password" not in result.stderr and "Traceback" not in result.stderr
    assert "set the environment variable GPUMARKET_WALLET_PASSWORD" in result.stderr
