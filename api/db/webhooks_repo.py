"""Webhook endpoints and the delivery outbox.

``enqueue`` writes one ``WebhookDelivery`` per target URL in the caller's transaction (the one
that changes the job), so an event is never lost nor sent for a change that rolled back. The
delivery loop (``worker.webhook_delivery``) claims due rows with a conditional update
(``claim``: several loops never send one delivery at once) and records every attempt.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api.db.models import Job, WebhookDelivery, WebhookEndpoint, utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
PROGRESS = "job.progress"


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --------------------------------------------------------------------------- endpoints


def create_endpoint(s: Session, project: str, url: str, events: list[str]) -> WebhookEndpoint:
    row = WebhookEndpoint(
        id=uuid.uuid4().hex, project=project, url=url, events=events, secret=new_secret(), created_at=utcnow()
    )
    s.add(row)
    s.flush()
    return row


def list_endpoints(s: Session, project: str | None) -> list[WebhookEndpoint]:
    """A project's endpoints (every project's for None), oldest first."""
    stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if project is not None:
        stmt = stmt.where(WebhookEndpoint.project == project)
    return list(s.execute(stmt).scalars())


def get_endpoint(s: Session, endpoint_id: str, project: str | None) -> WebhookEndpoint | None:
    row = s.get(WebhookEndpoint, endpoint_id)
    return row if row is not None and (project is None or row.project == project) else None


# --------------------------------------------------------------------------- the outbox


def _targets(s: Session, job: Job, event_type: str) -> list[tuple[str | None, str]]:
    """``(endpoint_id, url)`` of every URL told of ``event_type`` for ``job``."""
    out: list[tuple[str | None, str]] = []
    for hook in job.spec.get("webhooks") or ():
        if hook.get("events") is None or event_type in hook["events"]:
            out.append((None, hook["url"]))
    for ep in list_endpoints(s, job.project):
        if event_type in ep.events:
            out.append((ep.id, ep.url))
    return out


def enqueue(s: Session, job_id: str, event_type: str, data: dict[str, Any], throttle_s: float = 0.0) -> int:
    """Queue ``event_type`` for every URL of the job that wants it; returns how many. With
    ``throttle_s``, nothing is queued when the job had that event within the last seconds."""
    job = s.get(Job, job_id)
    if job is None:
        return 0
    targets = _targets(s, job, event_type)
    if not targets:
        return 0
    now = utcnow()
    if throttle_s > 0:
        last = s.execute(
            select(func.max(WebhookDelivery.created_at)).where(
                WebhookDelivery.job_id == job_id, WebhookDelivery.event_type == event_type
            )
        ).scalar_one()
        if last is not None and now - last < timedelta(seconds=throttle_s):
            return 0
    payload = {
        "type": event_type,
        "timestamp": now.isoformat(),
        "data": {"job_id": job.id, "name": job.name, "kind": job.kind, "project": job.project, **data},
    }
    for endpoint_id, url in targets:
        s.add(
            WebhookDelivery(
                id=f"msg_{uuid.uuid4().hex}",
                job_id=job_id,
                endpoint_id=endpoint_id,
                url=url,
                event_type=event_type,
                payload=payload,
                status=PENDING,
                attempts=[],
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    s.flush()
    return len(targets)


def due(s: Session, now: datetime, limit: int = 50) -> list[WebhookDelivery]:
    """Pending deliveries whose next attempt is due, oldest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return list(s.execute(stmt).scalars())


def claim(s: Session, delivery: WebhookDelivery, until: datetime) -> bool:
    """Hold ``delivery`` until ``until`` (its next attempt moves there); False when another loop
    claimed or settled it first."""
    stmt = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at == delivery.next_attempt_at,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return s.execute(stmt).rowcount == 1


def record_attempt(
    s: Session, delivery_id: str, attempt: dict[str, Any], status: str, next_attempt_at: datetime | None
) -> None:
    """Append one attempt and set the delivery's status and next attempt."""
    row = s.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert row is not None
    row.attempts = [*row.attempts, attempt]
    row.status = status
    row.next_attempt_at = next_attempt_at
    row.updated_at = utcnow()
    s.flush()


def signing_secret(s: Session, delivery: WebhookDelivery) -> str | None:
    """The secret that signs ``delivery``: its endpoint's, or its job's (None when gone)."""
    if delivery.endpoint_id is not None:
        ep = s.get(WebhookEndpoint, delivery.endpoint_id)
        return ep.secret if ep is not None else None
    job = s.get(Job, delivery.job_id)
    return job.webhook_secret if job is not None else None


def list_deliveries(s: Session, job_id: str) -> list[WebhookDelivery]:
    """A job's deliveries, oldest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    return list(s.execute(stmt).scalars())
