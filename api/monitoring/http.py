"""Request latency of this API process: ``mar_http_request_duration_seconds`` by route template
(``/jobs/{job_id}``, never the raw path), method and status class (``2xx``)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # a path no route serves (a 404): one label value, not the path


class RequestLatency:
    """ASGI middleware: ``app.add_middleware(RequestLatency, registry=...)``."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry):
        self.app = app
        self.histogram = Histogram(
            "mar_http_request_duration_seconds",
            "HTTP request latency of the API (an event stream: its whole duration).",
            ["route", "method", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.histogram.labels(_route(scope), scope["method"], f"{status // 100}xx").observe(
                time.perf_counter() - start
            )


def _route(scope: Scope) -> str:
    """The path template of the route that served ``scope``: routing records it in the scope
    (a mount's prefix for its files; the path's route for a 405)."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED
