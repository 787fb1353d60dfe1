"""HTTP errors: every error body is ``{"detail": [{code, message, param, loc, msg}, ...]}``.

``code``/``message``/``param`` are the project's structured error (``param`` = the dotted spec
field, query parameter or header at fault); ``loc``/``msg`` keep FastAPI's validation shape.
``MarError`` subclasses map to a status code here, so services raise domain errors and the
handlers stay thin.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, compile_path

from api.db.paging import InvalidCursorError
from api.db.quota_repo import QuotaExceededError
from api.db.states import JobNotFoundError, TransitionError
from mar_core.errors import CheckpointError, DatasetError, MarError, PathOutsideRootError, SpecError
from mar_core.paths import redact_paths
from mar_core.spec import error_param

log = logging.getLogger(__name__)


class ApiError(MarError):
    """An error with its own HTTP status."""

    status_code = 400
    headers: ClassVar[dict[str, str] | None] = None


class Unauthorized(ApiError):
    code = "unauthorized"
    status_code = 401
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class Forbidden(ApiError):
    code = "forbidden"
    status_code = 403


class NotFound(ApiError):
    code = "not_found"
    status_code = 404


class PayloadTooLarge(ApiError):
    code = "payload_too_large"
    status_code = 413


class LengthRequired(ApiError):
    code = "length_required"
    status_code = 411


class InvalidRequest(ApiError):
    """A request that parses but is refused (e.g. an idempotency key reused with another body)."""

    code = "invalid_request"
    status_code = 422


STATUS_OF: tuple[tuple[type[MarError], int], ...] = (
    (JobNotFoundError, 404),
    (TransitionError, 409),
    (PathOutsideRootError, 422),
    (SpecError, 422),
    (DatasetError, 422),
    (CheckpointError, 422),
    (InvalidCursorError, 422),
)


def error_item(code: str, message: str, param: str | None, loc: list[Any] | None = None) -> dict[str, Any]:
    """One entry of ``detail``."""
    return {"code": code, "message": message, "param": param, "loc": loc or [], "msg": message}


def _strip_prefix(message: str, param: str | None) -> str:
    """``"train.lr: must be > 0"`` -> ``"must be > 0"`` when the prefix is the param."""
    if param and message.startswith(param + ": "):
        return message[len(param) + 2 :]
    return message


def _mar_error_response(request: Request, exc: MarError) -> JSONResponse:
    if isinstance(exc, QuotaExceededError):
        retry = exc.retry_after
        status, headers = (409, None) if retry is None else (429, {"Retry-After": str(int(retry))})
    elif isinstance(exc, ApiError):
        status, headers = exc.status_code, exc.headers
    else:
        status = next((code for cls, code in STATUS_OF if isinstance(exc, cls)), 500)
        headers = None
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    loc = exc.param.split(".") if exc.param else []
    message = redact_paths(_strip_prefix(exc.message, exc.param), request.app.state.settings.path_names())
    body = {"detail": [error_item(exc.code, message, exc.param, loc)]}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_item(err: dict[str, Any]) -> dict[str, Any]:
    loc = list(err.get("loc", ()))
    where = loc[0] if loc else None
    rest = loc[1:] if where in ("body", "query", "path", "header", "cookie") else loc
    param = error_param({**err, "loc": rest})
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if where == "header" and rest:
        name = str(rest[0]).replace("_", "-")
        param = name if name != name.lower() else name.title()  # an alias keeps its spelling
    code = "invalid_spec" if where == "body" else "invalid_request"
    return error_item(code, _strip_prefix(msg, param), param, loc)


def _validation_response(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": [_validation_item(e) for e in exc.errors()]}, status_code=422)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names the first route's).
    Included routers hide their routes' methods, so the OpenAPI document's paths answer for
    them; plain routes (the dashboard, health) answer for themselves."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if (
            getattr(route, "methods", None)
            and route.matches({**request.scope, "method": "GET"})[0] != Match.NONE
        ):
            methods |= set(route.methods)
    for regex, documented in _documented_paths(request.app):
        if regex.match(request.url.path):
            methods |= documented
    methods |= {"HEAD"} if "GET" in methods else set()
    return sorted(methods)


def _documented_paths(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    """``(path regex, methods)`` of each path of the app's OpenAPI document, compiled once."""
    if getattr(app.state, "documented_paths", None) is None:
        app.state.documented_paths = [
            (compile_path(path)[0], {m.upper() for m in ops})
            for path, ops in app.openapi().get("paths", {}).items()
        ]
    return app.state.documented_paths


# A client that went away before its request was read (nginx's "client closed request"): no
# one reads the answer, but the access log and the metrics count a client error, never a 5xx.
CLIENT_CLOSED_REQUEST = 499


def _client_disconnect_response(request: Request, _exc: Exception) -> Response:
    """A client that dropped mid-body (``Content-Length`` longer than what it sent): logged at
    INFO, answered 499 (which reaches nobody)."""
    client = request.client.host if request.client else "?"
    log.info(
        "%s %s: the client (%s) disconnected before its body was read",
        request.method,
        request.url.path,
        client,
    )
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def _http_response(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's and FastAPI's own errors in the project's shape. A body that does not parse
    (FastAPI's and Starlette's 400) is a 422 naming ``body``, like every other bad input; one
    that did not arrive because the client disconnected is a 499."""
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI wraps it in a 400
        return _client_disconnect_response(request, exc.__cause__)
    status, headers, param = exc.status_code, exc.headers, None
    if status == 400:
        status, param = 422, "body"
    elif status == 413:
        param = "body"
    elif status == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    code = {
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        422: "invalid_request",
    }.get(status, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    loc = [param] if param else []
    return JSONResponse(
        {"detail": [error_item(code, message, param, loc)]}, status_code=status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(MarError, _mar_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_response)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_response)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_disconnect_response)
