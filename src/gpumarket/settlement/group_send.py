"""Group commit for chain transactions: one batch call for whatever queued meanwhile.

While one transaction of a kind (an open, a commit) waits for its block, the requests of that
kind that arrive queue behind it; the next sender takes them all into one batch call
(``openMany``, ``commitMany``). A busy market pays the batch price per job; an idle one sends
each request at once, alone, and waits for nothing more than before. The contract takes a batch
all or nothing, so a batch it refuses is sent again item by item and every request gets its
own answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gpumarket.errors import ContractReverted

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class _Waiting(Generic[Item, Outcome]):
    """One request's item and, once its transaction is answered, its outcome or error."""

    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    error: Exception | None = None


class GroupSender(Generic[Item, Outcome]):
    """Sends items of one kind, alone when nothing else waits, together when some do.

    ``many`` sends a batch (two or more) in one transaction and returns each item's outcome,
    in order; it raises :class:`ContractReverted` when the contract refuses the batch. ``one``
    sends a single item. Both run one at a time: the gate is held for a whole send."""

    def __init__(
        self,
        many: Callable[[list[Item]], list[Outcome]],
        one: Callable[[Item], Outcome],
        batch_size: int,
    ) -> None:
        self._many = many
        self._one = one
        self.batch_size = batch_size
        self._queue: list[_Waiting[Item, Outcome]] = []
        self._queue_lock = threading.Lock()
        self.gate = threading.Lock()

    def queued(self) -> int:
        """How many items wait for a sender (tests hold the gate and watch this)."""
        with self._queue_lock:
            return len(self._queue)

    def send(self, item: Item) -> Outcome:
        """Send ``item`` (perhaps in a batch with others) and return its outcome, or raise its
        own error."""
        waiting: _Waiting[Item, Outcome] = _Waiting(item)
        with self._queue_lock:
            self._queue.append(waiting)
        while not waiting.done.is_set():
            with self.gate:
                if waiting.done.is_set():  # a sender before us took it
                    break
                with self._queue_lock:
                    batch = self._queue[: self.batch_size]
                    del self._queue[: len(batch)]
                self._send(batch)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.outcome is not None
        return waiting.outcome

    def _send(self, batch: list[_Waiting[Item, Outcome]]) -> None:
        """Answer every item of ``batch``, whatever happens (each waiting thread is released)."""
        try:
            if len(batch) > 1:
                try:
                    outcomes = self._many([w.item for w in batch])
                except ContractReverted:
                    pass  # one bad item refuses them all: each goes alone, to get its answer
                else:
                    for waiting, outcome in zip(batch, outcomes, strict=True):
                        waiting.outcome = outcome
                    return
            for waiting in batch:
                try:
                    waiting.outcome = self._one(waiting.item)
                except Exception as exc:  # handed to the item's own request
                    waiting.error = exc
        except Exception as exc:  # e.g. the chain is unreachable: every request hears it
            for waiting in batch:
                if waiting.outcome is None and waiting.error is None:
                    waiting.error = exc
        finally:
            for waiting in batch:
                waiting.done.set()
