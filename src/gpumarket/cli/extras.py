"""Optional parts of the install: a command that needs one says which extra to install.

``pip install gpumarket`` is what a developer needs (the SDK, the CLI, a wallet that signs
orders, deposits and challenges). Running a provider daemon or a coordinator takes more:
Docker's and NVML's bindings, or FastAPI, SQLAlchemy and a database driver. Those come with the
``provider`` and ``coordinator`` extras (``all`` is both). The CLI imports them only inside the
commands that use them, and those commands call :func:`require_extra` first, so a missing extra
is one line naming what to install, not a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from gpumarket.errors import GpumarketError

Extra = Literal["provider", "coordinator"]

EXTRA_MODULES: dict[Extra, tuple[str, ...]] = {
    "provider": ("docker", "pynvml"),
    "coordinator": (
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "pydantic_settings",
        "prometheus_client",
        "limits",
        "swagger_ui_bundle",
    ),
}
"""The top-level modules each extra brings (pyproject.toml's optional dependencies)."""


class MissingExtra(GpumarketError):
    """A command needs modules of an extra that is not installed; the message says which."""

    code = "missing_extra"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a half-removed module
        return False


def require_extra(extra: Extra, needed_by: str) -> None:
    """Raise :class:`MissingExtra` unless ``extra`` is installed; ``needed_by`` names what
    needs it ("the provider daemon"). Call it before the command imports or does anything,
    so nothing is half done when the install is short."""
    if not all(_importable(module) for module in EXTRA_MODULES[extra]):
        raise MissingExtra(f"{needed_by} needs the {extra} extra: pip install 'gpumarket[{extra}]'")
