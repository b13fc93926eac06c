"""The dev-chain commands reach the chain their deployment file describes (its RPC URL), not
anvil's default port regardless."""

from __future__ import annotations

from pathlib import Path

from gpumarket.cli.chain import DEFAULT_RPC_URL, _rpc_url
from gpumarket.settlement.contracts import Deployment
from gpumarket.settlement.deploy import write_deployment

DEPLOYMENT = Deployment(31337, "0x" + "11" * 20, "0x" + "22" * 20, 1)


def test_the_deployment_files_rpc_url_is_used(tmp_path: Path) -> None:
    path = tmp_path / "devnet.json"
    write_deployment(DEPLOYMENT, path, "http://127.0.0.1:9545")
    assert _rpc_url(None, path) == "http://127.0.0.1:9545"
    assert _rpc_url("http://chain:8545", path) == "http://chain:8545"  # the flag wins


def test_without_one_the_default_port(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    write_deployment(DEPLOYMENT, path)
    assert _rpc_url(None, path) == DEFAULT_RPC_URL
    assert _rpc_url(None, tmp_path / "missing.json") == DEFAULT_RPC_URL
