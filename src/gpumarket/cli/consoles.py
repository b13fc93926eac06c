"""The CLI's rich consoles, shared by every command.

Soft wrap: a long line (a transaction hash, an address, an error) is never broken by an
inserted newline, so it can be copied, or grepped from a daemon's log; tables still fit the
terminal's width."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
