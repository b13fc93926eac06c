"""How a background pipeline rides out an outage of something it depends on.

A pipeline whose tick fails because the chain's RPC endpoint (or the database server) does
not answer would otherwise retry at its normal interval and log a traceback every time: a
30 s RPC outage made hundreds of ERROR lines. Like Prefect's ``critical_service_loop``, the
loop instead backs off exponentially with jitter while the failures are transient, says so in
one WARNING line when the outage begins (no traceback: the cause is known) and in one INFO
line when the dependency answers again. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import HTTPError, Timeout
from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState, wait_exponential
from web3.exceptions import ProviderConnectionError, RequestTimedOut

from gpumarket.errors import Unreachable

MAX_BACKOFF_SECONDS = 30.0
"""The longest wait between two tries of a pipeline during an outage."""

_TRANSIENT: tuple[type[BaseException], ...] = (
    Unreachable,  # the outbox's "the chain's RPC endpoint is unreachable"
    RequestsConnectionError,  # web3's HTTP provider: refused, reset, DNS failure
    Timeout,
    ProviderConnectionError,
    RequestTimedOut,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says a dependency is out of
    reach for now, as opposed to a bug: worth waiting out quietly, not worth a traceback."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, HTTPError) and _server_side(current):
            return True  # a proxy in front of the node answering 502/503/504
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True  # the database server went away
        current = current.__cause__ or current.__context__
    return False


def _server_side(exc: HTTPError) -> bool:
    response = exc.response
    return response is not None and response.status_code >= 500


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line naming the failure, short enough for a log line."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


class OutageBackoff:
    """The waits and the log lines of one pipeline through transient failures.

    :meth:`failed` answers how long to wait before the next try (``interval`` times two to the
    number of failures in a row, at most ``max_delay``, with jitter so replicas do not retry
    in step); :meth:`succeeded` ends the outage."""

    def __init__(
        self,
        name: str,
        interval: float,
        logger: logging.Logger,
        *,
        max_delay: float = MAX_BACKOFF_SECONDS,
        rng: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.interval = interval
        self.max_delay = max(max_delay, interval)
        self.log = logger
        self._rng = rng
        self._clock = clock
        self.failures = 0
        self._since: float | None = None
        # tenacity's exponential schedule (interval x 2^failures, capped), as every other
        # retry in the project; the jitter keeps replicas from retrying in step
        self._schedule = wait_exponential(multiplier=interval, max=self.max_delay)
        self._state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]

    @property
    def in_outage(self) -> bool:
        """Whether the last tries failed because a dependency was out of reach."""
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed tick; the seconds to wait before the next one. A tick that keeps
        failing waits ``interval`` times two to the failures in a row (at most ``max_delay``,
        jittered), whether a dependency is out of reach (logged once, without a traceback) or
        the tick has a bug (logged each time, with its traceback)."""
        if not is_transient(exc):
            self.log.error(
                "background pipeline %s failed; retrying with backoff", self.name, exc_info=exc
            )
        elif self._since is None:
            self._since = self._clock()
            self.log.warning(
                "background pipeline %s: a dependency is unreachable (%s); retrying with "
                "backoff, at most %gs apart, until it answers",
                self.name,
                describe(exc),
                self.max_delay,
            )
        self.failures += 1
        self._state.attempt_number = min(self.failures, 32) + 1  # tenacity counts from 1
        return float(self._schedule(self._state)) * self._rng(0.5, 1.0)

    def succeeded(self) -> None:
        """Record a tick that went through; ends an outage with one INFO line."""
        if self._since is not None:
            lasted = self._clock() - self._since
            self.log.info(
                "background pipeline %s recovered after %.1fs (%d failed tries)",
                self.name,
                lasted,
                self.failures,
            )
        self.failures = 0
        self._since = None
