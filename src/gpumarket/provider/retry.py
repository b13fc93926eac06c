"""Retrying calls to the coordinator the way a daemon should, on tenacity: transient failures
(connection errors, 5xx, a 408, 425 or 429 asking to come back later) back off exponentially
with jitter, never sooner than a Retry-After asks, and try again; other 4xx answers are final
and raised at once.

Every retry of the provider daemon is built here (its reports, its heartbeat and poll loops,
its log shipping) from the SDK's predicate and wait (:mod:`gpumarket.sdk.retry`), so that they
all follow one policy and each says in one log line what failed and when it tries again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    stop_never,
    stop_when_event_set,
)
from tenacity.stop import stop_base

from gpumarket.errors import AuthenticationFailed, GpumarketError
from gpumarket.sdk import retry as sdk_retry

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = sdk_retry.TRANSIENT_STATUSES
"""4xx answers that mean "not now" rather than "no": a request timeout, too early, too many."""


def is_transient(exc: BaseException) -> bool:
    """Whether the same request may succeed later: the coordinator was out of reach, failed
    (5xx) or asked us to come back later. Unlike the SDK, which raises an
    :class:`~gpumarket.errors.InternalServerError` at once, the daemon repeats a 500 too, for
    a bounded time: a result it gives up on is a run nobody pays for, and a coordinator whose
    database is failing over answers 500 until it is back."""
    if sdk_retry.is_transient(exc):
        return True
    return isinstance(exc, GpumarketError) and exc.status_code >= 500


def is_final(exc: GpumarketError) -> bool:
    """Whether the coordinator refused the request for good (a 4xx other than "come back
    later"): sending it again, or running the job again elsewhere, would not change the answer.
    A 401 is not final: it is about our credential, which the daemon renews."""
    return not is_transient(exc) and not isinstance(exc, AuthenticationFailed)


def pause(seconds: float) -> None:
    """Sleep between two tries of a policy without a stop event (log shipping, a job's
    reports); tests replace this function, so that nothing really sleeps."""
    time.sleep(seconds)


class _Waits:
    """The log line and the sleep between two tries of one policy. With the daemon's stop
    event, a wait is cut short when the daemon is asked to stop, and the failure that caused
    it is raised at once rather than tried again."""

    def __init__(self, what: str, stop: threading.Event | None) -> None:
        self.what = what
        self.stop = stop
        self.failure: BaseException | None = None

    def before_sleep(self, state: RetryCallState) -> None:
        """Say what failed and when it is tried again; keep the failure for :meth:`sleep`."""
        outcome = state.outcome
        self.failure = outcome.exception() if outcome is not None else None
        why = getattr(self.failure, "message", None) or str(self.failure)
        log.warning("%s failed (%s); retrying in %.1fs", self.what, why, state.upcoming_sleep)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, on the stop event when there is one."""
        if self.stop is None:
            pause(seconds)
        elif self.stop.wait(seconds) and self.failure is not None:
            raise self.failure


def policy(
    what: str,
    *,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    give_up_after: float | None = 300.0,
    stop: threading.Event | None = None,
) -> Retrying:
    """The provider's retry policy for ``what`` (named in the line each retry logs): transient
    failures (:func:`is_transient`) are tried again after
    :func:`~gpumarket.sdk.retry.backoff` waits (``first_delay`` doubling up to ``max_delay``,
    with jitter, never sooner than a Retry-After asks) until the next try would come
    ``give_up_after`` seconds after the first (None: never) or ``stop`` is set; then the last
    failure is raised as it is. Anything else is raised at once."""
    waits = _Waits(what, stop)
    gives_up: stop_base = stop_never if give_up_after is None else stop_before_delay(give_up_after)
    if stop is not None:
        gives_up = gives_up | stop_when_event_set(stop)
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=sdk_retry.backoff(first_delay, max_delay),
        stop=gives_up,
        sleep=waits.sleep,
        before_sleep=waits.before_sleep,
        reraise=True,
    )


def with_retry(
    call: Callable[[], T],
    what: str,
    give_up_after: float = 300.0,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    stop: threading.Event | None = None,
) -> T:
    """Run ``call`` under :func:`policy`: until it succeeds, raises a non-transient error, or
    the next try would come ``give_up_after`` seconds after the first (then the last transient
    error is raised). With ``stop``, a daemon asked to stop is not kept waiting between
    attempts: the last error is raised at once."""
    retrying = policy(
        what,
        first_delay=first_delay,
        max_delay=max_delay,
        give_up_after=give_up_after,
        stop=stop,
    )
    result: T = retrying(call)
    return result
