"""Webhooks: a project's endpoints (told of every job), and a job's deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from api.db import webhooks_repo
from api.db.models import WebhookDelivery, WebhookEndpoint
from api.deps import CurrentKey, ScopeDep, SessionDep, SettingsDep, get_current_key
from api.errors import InvalidRequest, NotFound
from api.routes.jobs import JobDep
from api.schemas import (
    ErrorPublic,
    WebhookDeliveryPublic,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointPublic,
)
from api.services.webhook_urls import check_webhook_url
from mar_core import names

router = APIRouter(
    tags=["webhooks"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)

EndpointId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.post("/webhooks", response_model=WebhookEndpointCreated, status_code=status.HTTP_201_CREATED)
def create_endpoint(
    body: WebhookEndpointIn, session: SessionDep, settings: SettingsDep, key: CurrentKey
) -> WebhookEndpoint:
    """Tell ``url`` of every job of the key's project (``events``: which, default all). The
    answer holds the signing ``secret``, shown only now."""
    events = list(dict.fromkeys(body.events or names.WEBHOOK_EVENTS))
    unknown = sorted(set(events) - set(names.WEBHOOK_EVENTS))
    if unknown:
        raise InvalidRequest(
            f"events: unknown {', '.join(unknown)}; valid: {', '.join(names.WEBHOOK_EVENTS)}", param="events"
        )
    check_webhook_url(body.url, settings, "url")
    row = webhooks_repo.create_endpoint(session, key.project, body.url, events)
    session.commit()
    return row


@router.get("/webhooks", response_model=list[WebhookEndpointPublic])
def list_endpoints(session: SessionDep, scope: ScopeDep) -> list[WebhookEndpoint]:
    """The project's endpoints (secrets are never shown again)."""
    return webhooks_repo.list_endpoints(session, scope)


@router.delete(
    "/webhooks/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": ErrorPublic}},
)
def delete_endpoint(endpoint_id: EndpointId, session: SessionDep, scope: ScopeDep) -> Response:
    """Stop telling the endpoint; its pending deliveries fail."""
    row = webhooks_repo.get_endpoint(session, endpoint_id, scope)
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", param="endpoint_id")
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/jobs/{job_id}/webhook-deliveries",
    response_model=list[WebhookDeliveryPublic],
    responses={404: {"model": ErrorPublic}},
)
def list_deliveries(job: JobDep, session: SessionDep) -> list[WebhookDelivery]:
    """Every webhook delivery of the job with its attempts, oldest first."""
    return webhooks_repo.list_deliveries(session, job.id)
