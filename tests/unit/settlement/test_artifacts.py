"""The committed contract artifacts are what the sources compile to, and look complete."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from gpumarket.settlement.artifacts import load_artifact
from gpumarket.settlement.contracts import Terms
from gpumarket.settlement.deploy import TERMS_FIELDS

ROOT = Path(__file__).resolve().parents[3]


def test_artifacts_are_current() -> None:
    if shutil.which("node") is None or not (ROOT / "contracts" / "node_modules").exists():
        pytest.fail("node and contracts/node_modules are needed: run `make contracts`")
    result = subprocess.run(
        ["node", "contracts/build.mjs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_market_abi_has_every_lifecycle_step() -> None:
    market = load_artifact("GpuMarket")
    functions = {item["name"] for item in market["abi"] if item["type"] == "function"}
    assert {
        "deposit",
        "withdraw",
        "stake",
        "requestUnstake",
        "withdrawStake",
        "openJob",
        "openVerified",
        "commitResult",
        "challenge",
        "resolve",
        "extendWindow",
        "finalize",
        "finalizeMany",
        "cancel",
        "expire",
        "withdrawEarnings",
        "setTerms",
        "pause",
        "unpause",
        "orderDigest",
        "resultDigest",
        "fundPool",
        "payRerun",
        "verificationPool",
    } <= functions
    events = {item["name"] for item in market["abi"] if item["type"] == "event"}
    assert {
        "JobOpened",
        "ResultCommitted",
        "Challenged",
        "Resolved",
        "Settled",
        "Refunded",
        "Cancelled",
        "WindowExtended",
        "TermsChanged",
        "PremiumPaid",
        "PoolFunded",
        "RerunPaid",
    } <= events
    errors = {item["name"] for item in market["abi"] if item["type"] == "error"}
    assert {
        "WrongState",
        "BadSignature",
        "WindowClosed",
        "WindowOpen",
        "StakeTooLow",
        "AlreadyExtended",
        "ExtensionTooLong",
        "AlreadyPaid",
        "InsufficientPool",
        "RunnerIsProvider",
    } <= errors
    terms = next(i for i in market["abi"] if i.get("name") == "currentTerms")["outputs"][0]
    assert [c["name"] for c in terms["components"]] == [
        "feeBps",
        "burnBps",
        "slashShareBps",
        "window",
        "minStake",
        "challengeBond",
        "stakeMultiple",
        "verifyWindow",
        "premiumBps",
    ]
    # the Python side sends and reads the tuple in the same order
    snake = [re.sub(r"([A-Z])", r"_\1", c["name"]).lower() for c in terms["components"]]
    assert list(TERMS_FIELDS) == snake
    assert [f.name for f in fields(Terms)] == snake
    assert market["bytecode"].startswith("0x6") and len(market["bytecode"]) > 1000
    assert load_artifact("TestStablecoin")["abi"]
    with pytest.raises(KeyError, match="no contract"):
        load_artifact("Nope")
