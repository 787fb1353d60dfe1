"""``ApiClientError``: an error answer of the API, or the API unreachable."""

from __future__ import annotations

from typing import Any

import httpx

from mar_core.errors import MarError

__all__ = ["ApiClientError", "error_from"]


class ApiClientError(MarError):
    """``status`` None: the API could not be reached. ``exit_code`` 2 for input errors (400, 413,
    422), like every input error of the CLI; ``retry_after``: the seconds a 429/503 asked for."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, param=param)
        self.status = status
        self.code = code or ("api_unreachable" if status is None else "api_error")
        self.details = details or []
        self.retry_after = retry_after
        self.exit_code = 2 if status in (400, 413, 422) else 1


def _retry_after(resp: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date counts as absent)."""
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from(resp: httpx.Response) -> ApiClientError:
    """The error of a non-2xx answer (its body read), with the server's ``{code, message, param}``."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    wait = _retry_after(resp)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        lines = []
        for d in detail:
            msg = d.get("message") or d.get("msg") or ""
            lines.append(f"{d['param']}: {msg}" if d.get("param") else msg)
        first = detail[0]
        return ApiClientError(
            "; ".join(lines), resp.status_code, first.get("code"), first.get("param"), detail, wait
        )
    text = detail if isinstance(detail, str) else resp.text[:500]
    return ApiClientError(f"HTTP {resp.status_code}: {text}", resp.status_code, retry_after=wait)
