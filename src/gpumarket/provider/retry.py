"""Retrying calls to the coordinator the way a daemon should: transient failures (connection
errors, 5xx, a 408 or 429 asking to come back later) back off with jitter and try again;
other 4xx answers are final and raised at once."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from gpumarket.errors import AuthenticationFailed, GpumarketError, TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "no": a request timeout, too early, too many."""


def is_transient(exc: GpumarketError) -> bool:
    """Whether the same request may succeed later: the coordinator was out of reach, failed
    (5xx) or asked us to come back later."""
    return (
        isinstance(exc, TransportError)
        or exc.status_code >= 500
        or exc.status_code in TRANSIENT_STATUSES
    )


def is_final(exc: GpumarketError) -> bool:
    """Whether the coordinator refused the request for good (a 4xx other than "come back
    later"): sending it again, or running the job again elsewhere, would not change the answer.
    A 401 is not final: it is about our credential, which the daemon renews."""
    return not is_transient(exc) and not isinstance(exc, AuthenticationFailed)


def with_retry(
    call: Callable[[], T],
    what: str,
    give_up_after: float = 300.0,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    stop: threading.Event | None = None,
) -> T:
    """Run ``call`` until it succeeds, raises a non-transient error, or ``give_up_after``
    seconds have passed (then the last transient error is raised). With ``stop``, a daemon
    asked to stop is not kept waiting between attempts: the last error is raised at once."""
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    pause = stop if stop is not None else threading.Event()
    while True:
        try:
            return call()
        except GpumarketError as exc:
            if not is_transient(exc):
                raise
            wait = max(delay, float(getattr(exc, "retry_after", 0) or 0))
            if time.monotonic() + wait > deadline or pause.is_set():
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc.message, wait)
            if pause.wait(wait * random.uniform(0.8, 1.2)):  # noqa: S311 - jitter, not crypto
                raise
            delay = min(delay * 2, max_delay)
