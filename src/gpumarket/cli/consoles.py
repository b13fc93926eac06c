"""The CLI's rich consoles, shared by every command.

Soft wrap: a long line (a transaction hash, an address, an error) is never broken by an
inserted newline, so it can be copied, or grepped from a daemon's log; tables still fit the
terminal's width.

No markup: what the CLI prints is full of text from elsewhere (error messages, failure
reasons, image names, YAML snippets), where rich would take ``[Errno 2]`` or ``[x]`` for a style
and drop it. Styled words are built as ``Text`` instead."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True, markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)
