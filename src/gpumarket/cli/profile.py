"""Where the CLI finds the coordinator and its API key: flags, then ``GPUMARKET_*`` variables,
then the profile ``gpumarket login`` saved (``$GPUMARKET_HOME/profile.json``, mode 600)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gpumarket.errors import AuthenticationFailed


def home() -> Path:
    """The CLI's folder (``$GPUMARKET_HOME`` or ``~/.gpumarket``)."""
    return Path(os.environ.get("GPUMARKET_HOME", "~/.gpumarket")).expanduser()


@dataclass
class Profile:
    """A coordinator and the credential to use with it."""

    coordinator: str
    api_key: str | None = None
    address: str | None = None
    wallet: str | None = None

    def keystore(self) -> Path:
        """The wallet `gpumarket login` used (``$GPUMARKET_WALLET`` overrides it)."""
        return Path(self.wallet or home() / "wallet.json").expanduser()

    def save(self) -> Path:
        """Write the profile readable only by its owner."""
        path = home() / "profile.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.__dict__, out, indent=2)
        return path


def load_profile(coordinator: str | None = None, api_key: str | None = None) -> Profile:
    """The effective profile; flags win over the environment, which wins over the file."""
    saved: dict[str, str] = {}
    path = home() / "profile.json"
    if path.exists():
        saved = json.loads(path.read_text())
    return Profile(
        coordinator=coordinator
        or os.environ.get("GPUMARKET_COORDINATOR")
        or saved.get("coordinator")
        or "http://127.0.0.1:8000",
        api_key=api_key or os.environ.get("GPUMARKET_API_KEY") or saved.get("api_key"),
        address=saved.get("address"),
        wallet=os.environ.get("GPUMARKET_WALLET") or saved.get("wallet"),
    )


def require_key(profile: Profile) -> str:
    """The API key, or a one-line hint on how to get one."""
    if not profile.api_key:
        raise AuthenticationFailed(
            "not logged in: run `gpumarket login --coordinator URL` (or set GPUMARKET_API_KEY)"
        )
    return profile.api_key
