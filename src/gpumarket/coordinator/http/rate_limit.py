"""Rate limits on the anonymous and the expensive routes, per client address.

A sign-in challenge costs a database row and anyone may ask for one; a match explanation walks
up to thousands of providers; a submission opens an escrow. Each has a configurable budget per
client address (``GPUMARKET_RATE_LIMIT_*``, in the ``limits`` library's notation such as
``30/minute``); past it the coordinator answers 429 with ``Retry-After``. Counters live in the
process (each replica limits what it serves), which is what a per-address budget needs.
"""

from __future__ import annotations

import math
import time

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from gpumarket.coordinator.http.body_guard import send_error
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import RateLimited


class RateLimiter:
    """One moving-window limiter shared by every limited route of an app."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, bucket: str, rule: str | None, client: str) -> None:
        """Count one request of ``client`` against ``rule``; raise :class:`RateLimited` when the
        budget is spent (``rule`` None or empty: no limit)."""
        if not rule:
            return
        item = limits.parse(rule)
        if self._limiter.hit(item, bucket, client):
            return
        reset = self._limiter.get_window_stats(item, bucket, client).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"too many {bucket} requests from {client} (limit {rule}); try again in "
            f"{retry_after} s",
            retry_after=retry_after,
        )


LIMITED_ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/v1/auth/challenge"): ("sign-in", "rate_limit_auth"),
    ("POST", "/v1/auth/register"): ("sign-in", "rate_limit_auth"),
    ("POST", "/v1/offers/match"): ("match", "rate_limit_match"),
    ("POST", "/v1/jobs"): ("submit", "rate_limit_submit"),
}
"""(method, path) -> (budget name, the settings attribute holding its rule)."""


class RateLimitGuard:
    """ASGI middleware charging :data:`LIMITED_ROUTES` requests to their client's budget
    before anything else is done for them (no body read, no parsing, no database): a flood
    costs the coordinator as little as possible per refused request."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, settings: CoordinatorSettings) -> None:
        self.app = app
        self.limiter = limiter
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = (
            LIMITED_ROUTES.get((scope["method"], scope["path"].rstrip("/") or "/"))
            if scope["type"] == "http"
            else None
        )
        if limited is not None:
            bucket, setting = limited
            client = scope.get("client")
            try:
                self.limiter.check(
                    bucket, getattr(self.settings, setting), client[0] if client else "unknown"
                )
            except RateLimited as refused:
                # the body is left unread: uvicorn drains or drops it before the next request
                headers = {"Retry-After": str(refused.retry_after)}
                await send_error(send, refused, headers, close=False)
                return
        await self.app(scope, receive, send)
