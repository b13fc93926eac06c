"""A coordinator misconfiguration is a start-up error for its operator: one line naming the
variables and what is wrong with them, exit status 1, no traceback, no secret echoed, and
nothing served (never a client's 4xx later)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpumarket.coordinator.settings import load_settings
from gpumarket.errors import ConfigurationError

KEY = "0x" + "ab" * 32


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUMARKET_")}
    return subprocess.run(
        [sys.executable, "-m", "gpumarket.cli", "coordinator", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=clean | env,
    )


def test_a_bad_setting_stops_serve_with_one_line(tmp_path: Path) -> None:
    result = _serve(tmp_path, GPUMARKET_FEE_BPS="5000")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: bad coordinator configuration: GPUMARKET_FEE_BPS:")
    assert not (tmp_path / "gpumarket.db").exists()  # nothing was opened


def test_half_an_on_chain_configuration_is_refused_at_start(tmp_path: Path) -> None:
    result = _serve(tmp_path, GPUMARKET_CHAIN_RPC_URL="http://127.0.0.1:1", GPUMARKET_CHAIN_KEY=KEY)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "missing: GPUMARKET_CHAIN_DEPLOYMENT" in result.stderr
    assert KEY[2:] not in result.stderr


def _deployment(tmp_path: Path) -> Path:
    path = tmp_path / "deployment.json"
    token, market = "0x" + "11" * 20, "0x" + "22" * 20
    path.write_text(json.dumps({"chain_id": 31337, "token": token, "market": market, "block": 1}))
    return path


def test_a_complete_on_chain_configuration_is_accepted(tmp_path: Path) -> None:
    settings = load_settings(
        db_url="sqlite://",
        chain_rpc_url="http://127.0.0.1:8545",
        chain_deployment=_deployment(tmp_path),
        chain_key=KEY[2:],  # 0x is optional
    )
    assert settings.chain_configured


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chain_deployment": None}, "missing: GPUMARKET_CHAIN_DEPLOYMENT"),
        ({"chain_rpc_url": None}, "missing: GPUMARKET_CHAIN_RPC_URL"),
        ({"chain_key": "0x1234"}, "GPUMARKET_CHAIN_KEY is not a private key"),
        ({"chain_key": "not a key " + "ab" * 30}, "GPUMARKET_CHAIN_KEY is not a private key"),
        ({"chain_deployment": "nowhere.json"}, "cannot read the deployment file"),
        ({"chain_deployment": "empty.json"}, "is not a deployment file (no chain_id, token"),
        ({"db_url": "not a url"}, "GPUMARKET_DB_URL: not a database URL"),
        ({"rate_limit_auth": "often"}, "GPUMARKET_RATE_LIMIT_AUTH: 'often' is not a rate"),
    ],
)
def test_each_misconfiguration_is_named(
    tmp_path: Path, overrides: dict[str, str | None], message: str
) -> None:
    (tmp_path / "empty.json").write_text("{}")
    given: dict[str, object] = {
        "db_url": "sqlite://",
        "chain_rpc_url": "http://127.0.0.1:8545",
        "chain_deployment": _deployment(tmp_path),
        "chain_key": KEY,
    }
    for name, value in overrides.items():
        given[name] = tmp_path / value if name == "chain_deployment" and value else value
    with pytest.raises(ConfigurationError, match="bad coordinator configuration") as raised:
        load_settings(**given)
    assert message in raised.value.message
    assert raised.value.status_code == 500  # never a client's error
    for secret in ("0x1234", "ab" * 30):  # a key, even a wrong one, is never echoed
        assert secret not in raised.value.message
        assert secret not in str(raised.value.__cause__)
