"""Liveness and readiness (no auth)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.broker import check_broker
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is up."""
    return HealthPublic(status="ok")


def _check_db(request: Request) -> None:
    with request.app.state.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker(request: Request) -> None:
    check_broker(request.app.state.celery, request.app.state.settings.broker_timeout_seconds)


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def readyz(request: Request) -> JSONResponse:
    """The database answers ``SELECT 1`` and the broker accepts a connection (short timeouts);
    503 names the check that failed."""
    timeout = request.app.state.settings.broker_timeout_seconds + 1
    checks: dict[str, str] = {}
    for name, fn in (("database", _check_db), ("broker", _check_broker)):
        try:
            with anyio.fail_after(timeout):
                await anyio.to_thread.run_sync(fn, request, abandon_on_cancel=True)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"error: no answer within {timeout:.0f} s"
        except Exception as e:  # noqa: BLE001 - report any failure
            checks[name] = f"error: {type(e).__name__}: {e}"
    ok = all(v == "ok" for v in checks.values())
    body = HealthPublic(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
