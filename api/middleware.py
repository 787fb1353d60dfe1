"""Request checks before any route runs (pure ASGI, so nothing reads a body it refuses):

- the size of a body: over ``max_body_bytes`` (``MAR_MAX_BODY_BYTES``) from its
  ``Content-Length``, or by counting the chunks when it has none, a 413 before authentication
  or a route reads it; uploads (``/checkpoints``, ``/datasets``) have their own, larger limits,
  checked by their routes from the same header before they read the body;
- text the service must never store or echo: a control character (NUL, escape sequences) or
  an undecodable byte in the path, the query string or the headers the API reads is a 422
  naming the parameter.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.exceptions import HTTPException

from api.errors import error_item
from mar_core.spec_limits import control_char

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# Routes that stream a large body under a limit of their own (checked from Content-Length there).
UPLOAD_PATHS = ("/checkpoints", "/datasets")
# Headers whose values the API reads as text (Authorization is checked by its own dependency).
CHECKED_HEADERS = (b"idempotency-key", b"last-event-id")


async def _answer(
    send: Callable[[Message], Awaitable[None]], status: int, code: str, message: str, param: str
) -> None:
    body = json.dumps({"detail": [error_item(code, message, param, [param])]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bad_text(scope: Scope) -> tuple[str, str] | None:
    """``(param, message)`` for the first control character or undecodable byte of the request."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        path = unquote(raw_path.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        return "path", "the path is not UTF-8"
    if control_char(path) is not None:
        return "path", f"the path holds a control character ({control_char(path)!r})"
    try:
        query = scope.get("query_string", b"").decode("ascii")
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return "query", "the query string is not UTF-8"
    for name, value in pairs:
        bad = control_char(name) or control_char(value)
        if bad is not None:
            return name if control_char(
                name
            ) is None else "query", f"must not contain control characters (found {bad!r})"
    for name, value in scope.get("headers", ()):
        if name in CHECKED_HEADERS:
            text = value.decode("latin-1")
            if control_char(text) is not None:
                param = name.decode().title()
                return param, f"must not contain control characters (found {control_char(text)!r})"
    return None


class RequestGuard:
    """The ASGI middleware of the checks above."""

    def __init__(self, app: ASGIApp, max_body_bytes: Callable[[], int]):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bad = _bad_text(scope)
        if bad is not None:
            param, message = bad
            await _answer(send, 422, "invalid_request", f"{param}: {message}", param)
            return
        if scope["path"].rstrip("/") in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes()
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(send, 413, "payload_too_large", f"the body is larger than {limit} bytes", "body")
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # FastAPI re-raises an HTTPException met while reading a body
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        await self.app(scope, counted, send)
