"""Retrying calls to the coordinator the way a daemon should: transient failures (connection
errors, 5xx) back off with jitter and try again; 4xx answers are final and raised at once."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from gpumarket.errors import TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retry(
    call: Callable[[], T],
    what: str,
    give_up_after: float = 300.0,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    stop: threading.Event | None = None,
) -> T:
    """Run ``call`` until it succeeds, raises a non-transient error, or ``give_up_after``
    seconds have passed (then the last TransportError is raised). With ``stop``, a daemon
    asked to stop is not kept waiting between attempts: the last error is raised at once."""
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    pause = stop if stop is not None else threading.Event()
    while True:
        try:
            return call()
        except TransportError as exc:
            if time.monotonic() + delay > deadline or pause.is_set():
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc.message, delay)
            if pause.wait(delay * random.uniform(0.8, 1.2)):  # noqa: S311 - jitter, not crypto
                raise
            delay = min(delay * 2, max_delay)
