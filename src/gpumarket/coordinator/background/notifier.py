"""Wakes long-polls and the matcher inside one process (other replicas poll the database)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


def wake_followers_on_commit(
    factory: sessionmaker[Session], notifier: Notifier, changed_key: str
) -> None:
    """After each commit of ``factory``'s sessions, wake those following the jobs whose state
    it changed (``session.info[changed_key]``): a log stream ends as soon as its job does,
    instead of at its next idle read."""

    def committed(session: Session) -> None:
        for job_id in session.info.pop(changed_key, ()):
            notifier.wake_waiting(log_key(job_id))

    def rolled_back(session: Session) -> None:
        session.info.pop(changed_key, None)

    event.listen(factory, "after_commit", committed)
    event.listen(factory, "after_rollback", rolled_back)


MATCHER_KEY = "__matcher__"
"""The key the matcher loop waits on between its ticks."""


def log_key(job_id: str) -> str:
    """The key a job's log followers wait on."""
    return f"logs:{job_id}"


class Notifier:
    """Per-key asyncio events; ``notify`` is safe to call from worker threads."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._waiters: dict[str, int] = defaultdict(int)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop the waiters run on."""
        self._loop = loop

    def notify(self, key: str) -> None:
        """Wake everyone waiting on ``key`` (from any thread); remembered until the next wait
        when nobody waits yet (the matcher, a provider between two long-polls)."""
        self._on_loop(self._set, key)

    def wake_matcher(self) -> None:
        """Run the matcher now instead of at its next tick (after a submission, a funded
        order, new capacity or a requeue)."""
        self.notify(MATCHER_KEY)

    def wake_waiting(self, key: str) -> None:
        """Wake those waiting on ``key`` now, remembering nothing when nobody is (for keys
        that come and go, such as one job's log followers); safe from any thread."""
        self._on_loop(self._wake_if_waited, key)

    def _on_loop(self, action: Callable[[str], None], key: str) -> None:
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            action(key)
        else:
            self._loop.call_soon_threadsafe(action, key)

    def _set(self, key: str) -> None:
        self._events[key].set()

    def _wake_if_waited(self, key: str) -> None:
        event = self._events.get(key)
        if event is not None:
            event.set()

    async def wait(self, key: str, within: float) -> bool:
        """Wait up to ``within`` seconds for ``key``; True when notified."""
        event = self._events[key]
        self._waiters[key] += 1
        try:
            await asyncio.wait_for(event.wait(), within)
            return True
        except TimeoutError:
            return False
        finally:
            event.clear()
            self._waiters[key] -= 1
            if self._waiters[key] == 0:  # per-job keys come and go: keep only live ones
                del self._waiters[key]
                self._events.pop(key, None)

    def waiting(self) -> int:
        """How many keys have someone waiting (for tests and metrics)."""
        return len(self._events)
