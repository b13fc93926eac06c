"""Wakes long-polls and the matcher inside one process (other replicas poll the database)."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    """Per-key asyncio events; ``notify`` is safe to call from worker threads."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop the waiters run on."""
        self._loop = loop

    def notify(self, key: str) -> None:
        """Wake everyone waiting on ``key`` (from any thread)."""
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._events[key].set()
        else:
            self._loop.call_soon_threadsafe(self._events[key].set)

    async def wait(self, key: str, within: float) -> bool:
        """Wait up to ``within`` seconds for ``key``; True when notified."""
        event = self._events[key]
        try:
            await asyncio.wait_for(event.wait(), within)
            return True
        except TimeoutError:
            return False
        finally:
            event.clear()
