"""Loading the compiled contracts (ABI and bytecode) shipped inside the package."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
CONTRACTS = ("GpuMarket", "TestStablecoin")


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (keys: abi, bytecode, deployedBytecode, compiler)."""
    if name not in CONTRACTS:
        raise KeyError(f"no contract {name!r}; there are {', '.join(CONTRACTS)}")
    artifact: dict[str, Any] = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return artifact
