"""Refuse hostile request bodies before anything parses them.

Every byte a client sends passes through here first, so the limits hold on every route at
once rather than route by route: a body over its cap is refused as soon as its
``Content-Length`` says so (or, without one, as soon as it grows past it), a JSON body nested
deeper than any wire model is refused before the JSON parser recurses into it (a parser that
recurses 100,000 levels overflows the C stack and kills the process), a body that trickles in
slower than the read deadline is cut off, and a URL carrying a NUL character is refused (no
database column can hold one, and PostgreSQL's text types reject it).

Streamed uploads (the output archive) pass through unbuffered under their own, larger cap;
the store that receives them counts bytes itself and checks the hash.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpumarket.errors import GpumarketError, InvalidRequest, LimitExceeded, RequestTimeout

# Strings are removed before brackets are counted, so "[[[" inside a string is not nesting.
# (the unrolled form: runs of plain characters are matched in one step, not one at a time)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_INLINE_CHECK_BYTES = 64 * 1024


def json_nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Whether a JSON document nests arrays/objects deeper than ``max_depth``.

    Works at C speed on bytes (no recursion, no per-byte Python loop): strings are stripped,
    everything but brackets deleted, then innermost pairs are removed once per level. A
    document with brackets left after ``max_depth`` rounds is too deep; one whose brackets
    stop pairing off is not JSON at all, and counts as too deep too, since a recursive parser
    would descend into every unclosed bracket before noticing.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if re.search(rb"[\[{]{%d}" % (max_depth + 1), brackets):
        return True  # that many openers in a row: too deep, without counting further
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets, removed = _INNERMOST_PAIR.subn(b"", brackets)
        if removed == 0:
            return True
    return bool(brackets)


@dataclass(frozen=True)
class RouteBody:
    """How one route takes its body: its size cap, and whether it is streamed to the route
    unbuffered (an upload) instead of read and checked here first."""

    cap: int
    streamed: bool = False


@dataclass(frozen=True)
class BodyLimits:
    """The caps the guard enforces; ``route_body`` names the routes that differ from the
    default (a buffered JSON body under ``max_body_bytes``), given the method and path."""

    max_body_bytes: int
    max_json_depth: int
    read_timeout_seconds: float
    route_body: Callable[[str, str], RouteBody | None]


class _Refused(Exception):
    def __init__(self, error: GpumarketError) -> None:
        self.error = error


class BodyGuard:
    """ASGI middleware enforcing :class:`BodyLimits` on every HTTP request."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_url(scope)
            route = self.limits.route_body(scope["method"], scope["path"])
            cap = route.cap if route else self.limits.max_body_bytes
            declared = self._declared_length(scope)
            if declared is not None and declared > cap:
                if declared <= _drain_limit(cap):
                    # read and drop it, so the client (which sends before it reads) gets the
                    # answer instead of a connection reset mid-upload
                    await self._drain(receive)
                raise _Refused(_too_large(cap))
            if route is not None and route.streamed:
                await self.app(scope, self._deadline_receive(receive), send)
                return
            body = await self._read_body(receive, cap)
        except _Refused as refused:
            await send_error(send, refused.error)
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_url(self, scope: Scope) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        if b"\x00" in unquote_to_bytes(raw) or b"\x00" in unquote_to_bytes(
            scope.get("query_string", b"")
        ):
            raise _Refused(InvalidRequest("the URL contains a NUL character (%00); remove it"))

    def _declared_length(self, scope: Scope) -> int | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    raise _Refused(InvalidRequest("Content-Length is not a byte count"))
                return int(value)
        return None

    async def _drain(self, receive: Receive) -> None:
        while True:
            message = await self._next_chunk(receive)
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return

    async def _next_chunk(self, receive: Receive) -> Message:
        try:
            return await asyncio.wait_for(receive(), self.limits.read_timeout_seconds)
        except TimeoutError:
            raise _Refused(
                RequestTimeout(
                    f"no request body bytes for {self.limits.read_timeout_seconds:g} s; "
                    "the request was abandoned (send the whole body, then wait for the answer)"
                )
            ) from None

    async def _read_body(self, receive: Receive, cap: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._next_chunk(receive)
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                if size <= _drain_limit(cap) and message.get("more_body", False):
                    await self._drain(receive)
                raise _Refused(_too_large(cap))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        depth = self.limits.max_json_depth
        # a large body is measured off the event loop, so it never stalls other requests
        too_deep = (
            await run_in_threadpool(json_nesting_exceeds, body, depth)
            if len(body) > _INLINE_CHECK_BYTES
            else bool(body) and json_nesting_exceeds(body, depth)
        )
        if too_deep:
            raise _Refused(
                InvalidRequest(
                    f"the JSON body nests deeper than {self.limits.max_json_depth} levels "
                    "(or its brackets do not pair up); no request needs that"
                )
            )
        return body

    def _deadline_receive(self, receive: Receive) -> Receive:
        async def guarded() -> Message:
            try:
                return await self._next_chunk(receive)
            except _Refused as refused:
                raise refused.error from None

        return guarded


def _drain_limit(cap: int) -> int:
    """Up to this size an over-cap body is read and dropped before the 413 (a client's honest
    mistake gets a readable answer); past it the connection is closed at once (2 GB announced
    is an attack, and reading it would be the attack working)."""
    return max(4 * cap, 16 * 1024 * 1024)


def _too_large(cap: int) -> LimitExceeded:
    return LimitExceeded(
        f"the request body is over this route's {cap} byte cap; send less (large job inputs "
        "go by url)"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the already-read body, then the real channel (so the app
    still learns of a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def send_error(
    send: Send, error: GpumarketError, headers: dict[str, str] | None = None, close: bool = True
) -> None:
    """Answer with ``error``'s body from ASGI middleware (before the app, so no exception
    handler is there to do it); ``close``: end the connection after it (a body left unread
    must not be taken for the next request)."""
    payload: dict[str, Any] = error.to_dict()
    data = json.dumps(payload).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *([(b"connection", b"close")] if close else []),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
