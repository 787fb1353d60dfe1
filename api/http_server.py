"""How ``mar api`` serves the app: uvicorn's h11 protocol with read deadlines, and a bound on
connections (``server_config``).

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but has no deadline for a
request still arriving: a client sending its headers a byte at a time, or a body shorter than
its ``Content-Length``, holds a connection (and, with a body, an app task) for as long as it
likes. ``DeadlineH11Protocol`` adds two, in the style of nginx's ``client_header_timeout`` and
``client_body_timeout``:

- ``header_timeout``: a request's headers must be complete this long after the connection opened
  or the previous response ended (a total, so a byte now and then does not extend it); else the
  client gets a 408 and the connection is closed;
- ``body_timeout``: while a body is arriving, no read may wait longer than this (an idle time,
  so a large upload on a slow link passes); else the connection is closed, the app sees a
  disconnect (``api.errors``: logged at INFO, a 499, never a 5xx).

``limit_concurrency`` bounds the connections (and tasks) one process holds; past it uvicorn
answers 503. A reverse proxy in front (per-client limits, TLS) is still the deployment's choice
(docs/deploy.md); these hold without one (``mar up``, the single container).
"""

from __future__ import annotations

import asyncio
import logging

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.settings import Settings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header and a body read deadline (``deadline_protocol``)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:
            self._arm(self.body_timeout, "body")  # an idle time: every read re-arms it
        elif self.cycle is not cycle:
            self._disarm()  # a whole request came: the app answers in its own time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.header_timeout, "headers")  # the next request, if any, has as long

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if what == "body" and self.flow.read_paused:  # the app is behind, not the client
            self._arm(seconds, what)
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info(
            "closing the connection of %s: its request %s did not arrive within %.0f s", client, what, seconds
        )
        if what == "headers" and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[DeadlineH11Protocol]:
    """A ``DeadlineH11Protocol`` class with these deadlines (uvicorn builds one per connection)."""
    return type(
        "DeadlineH11Protocol",
        (DeadlineH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


def server_config(app, settings: Settings, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration of ``mar api`` under ``settings`` (the tests serve the same)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        http=deadline_protocol(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds),
        timeout_keep_alive=int(settings.http_keepalive_seconds),
        limit_concurrency=settings.http_max_connections,
    )
