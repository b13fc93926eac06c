"""uvicorn's HTTP protocol with a deadline on request headers.

uvicorn times out idle keep-alive connections but waits forever for the headers of a request
once a client has started one (or has connected and sent nothing): a few hundred such
connections ("slowloris") hold the server's sockets and memory. This protocol closes a
connection whose request headers are not complete within ``header_timeout`` seconds of its
first byte (or of the connection opening). Request bodies have their own deadline in
:mod:`gpumarket.coordinator.http.body_guard`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def header_timeout_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        """HttpToolsProtocol closing connections that do not finish their headers in time."""

        _header_deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _expire(self) -> None:
            self._header_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # between requests the keep-alive timeout governs an idle connection
            self._disarm()
            super().on_response_complete()

    return HeaderDeadlineProtocol
