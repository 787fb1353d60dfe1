"""``GET /metrics/prometheus``: the Prometheus text format of ``app.state.prometheus_registry``
(``api.monitoring``). No API key: a scraper holds none; with ``MAR_METRICS_TOKEN`` set, that
bearer token is required."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import SettingsDep
from api.errors import Unauthorized
from api.schemas import ErrorPublic

router = APIRouter(tags=["monitoring"])
_token = HTTPBearer(auto_error=False, description="MAR_METRICS_TOKEN, when the deployment sets one")


@router.get(
    "/metrics/prometheus",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {"model": ErrorPublic}},
    openapi_extra={"security": [{}, {"HTTPBearer": []}]},  # the token is optional (MAR_METRICS_TOKEN)
)
def prometheus_metrics(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_token)],
) -> Response:
    """Request latency, jobs by state, queue depth, job durations, workers' heartbeat age and
    steps per second (README, "Monitoring")."""
    expected = settings.metrics_token
    if expected and not (credentials and secrets.compare_digest(credentials.credentials, expected)):
        raise Unauthorized("missing or wrong metrics token (MAR_METRICS_TOKEN)", param="Authorization")
    return Response(generate_latest(request.app.state.prometheus_registry), media_type=CONTENT_TYPE_LATEST)
