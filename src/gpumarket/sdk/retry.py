"""When and how the SDK tries a call again, on tenacity: the one place that says which
failures are worth another try and how long to wait before it.

Worth another try (:func:`is_transient`): the coordinator out of reach or answering garbage
(:class:`~gpumarket.errors.Unreachable`: a refused connection, a timeout, a 502-504 from its
proxy), any other 5xx but a 500, and a 408, 425 or 429 asking to come back later. Not worth
one: a 500 (:class:`~gpumarket.errors.InternalServerError`, a bug on the coordinator's side
that fails the same way every time) and any other 4xx (a refusal, which the same request
gets again).

The waits (:func:`backoff`) grow exponentially with jitter up to a cap, and are never shorter
than a ``retry_after`` the failure carries. The provider daemon builds its own policies
(:mod:`gpumarket.provider.retry`) from the same two pieces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_before_delay,
    stop_never,
    wait_exponential,
    wait_fixed,
    wait_random,
)
from tenacity.stop import stop_base

from gpumarket.errors import GpumarketError, InternalServerError, Unreachable

TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "no": a request timeout, too early, too many."""

FIRST_WAIT_SECONDS = 0.5
"""The wait before the first retry of a resuming call; it doubles at each failure."""
MAX_WAIT_SECONDS = 5.0
"""The longest wait between two tries of a resuming call (a Retry-After may ask for more)."""


def is_transient(exc: BaseException) -> bool:
    """Whether the same request may succeed later: the coordinator was out of reach, its proxy
    or a dependency failed (5xx but 500), or it asked us to come back later. The predicate of
    every retry in the project outside the coordinator."""
    if isinstance(exc, Unreachable | httpx.TransportError):
        return True
    if not isinstance(exc, GpumarketError) or isinstance(exc, InternalServerError):
        return False
    return exc.status_code > 500 or exc.status_code in TRANSIENT_STATUSES


def retry_after(state: RetryCallState) -> float:
    """The seconds the last failure asked to wait (``RateLimited.retry_after``), 0 if none."""
    outcome = state.outcome
    failure = outcome.exception() if outcome is not None and outcome.failed else None
    return float(getattr(failure, "retry_after", 0) or 0)


def backoff(first: float, most: float) -> Callable[[RetryCallState], float]:
    """A tenacity wait: ``first`` seconds doubling at each failure in a row, plus up to
    ``first`` of random jitter so that clients do not all come back in step, at most ``most``
    seconds, and never sooner than a Retry-After asks."""
    growing = wait_exponential(multiplier=first, max=most) + wait_random(0, first)

    def wait(state: RetryCallState) -> float:
        return max(retry_after(state), min(most, growing(state)))

    return wait


def pause(seconds: float) -> None:
    """Sleep between two tries; every SDK policy sleeps here, so a test replaces this function
    (or gives a policy its own ``sleep`` with ``Retrying.copy``) and nothing really sleeps."""
    time.sleep(seconds)


def resuming(
    limit: float,
    *,
    within: float | None = None,
    first: float = FIRST_WAIT_SECONDS,
    most: float = MAX_WAIT_SECONDS,
    on_give_up: Callable[[RetryCallState], Any] | None = None,
) -> Retrying:
    """The policy of a call that rides out a coordinator restart (a followed log, a wait):
    transient failures are tried again with :func:`backoff` until they have gone on for
    ``limit`` seconds, or the next try would come after ``within`` seconds; then the last
    failure is raised as it is (or ``on_give_up`` decides). Anything else is raised at once."""
    stop: stop_base = stop_after_delay(limit)
    if within is not None:
        stop = stop | stop_before_delay(within)
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=backoff(first, most),
        stop=stop,
        sleep=pause,
        reraise=True,
        retry_error_callback=on_give_up,
    )


class StreamEnded(Exception):
    """A followed stream ended or broke before what it follows had finished: open it again,
    after the last item received."""


def reconnecting(gap: float = FIRST_WAIT_SECONDS) -> Retrying:
    """The policy of a stream that is opened again each time it ends early (raises
    :class:`StreamEnded`), for as long as it goes on: ``gap`` seconds between two connections,
    so that a coordinator that keeps ending streams (one shutting down behind a load balancer)
    is not asked in a tight loop. Riding out an outage while opening one is
    :func:`resuming`'s job; anything but :class:`StreamEnded` is raised at once."""
    return Retrying(
        retry=retry_if_exception_type(StreamEnded),
        wait=wait_fixed(gap),
        stop=stop_never,
        sleep=pause,
        reraise=True,
    )


def polling(
    until: Callable[[Any], bool],
    *,
    first: float,
    most: float,
    within: float | None = None,
    on_give_up: Callable[[RetryCallState], Any] | None = None,
) -> Retrying:
    """The policy of a look repeated until its answer satisfies ``until`` (a job reaching a
    state): ``first`` seconds between looks, growing by half at each look up to ``most``; it
    gives up before a look that would come after ``within`` seconds (``on_give_up`` then
    decides; by default a ``RetryError``). A look that raises is not repeated here: wrap it in
    :func:`resuming` to ride out an outage."""
    return Retrying(
        retry=retry_if_result(lambda answer: not until(answer)),
        wait=wait_exponential(multiplier=first, exp_base=1.5, max=max(first, most)),
        stop=stop_never if within is None else stop_before_delay(within),
        sleep=pause,
        retry_error_callback=on_give_up,
    )
