"""The webhook delivery loop: sends due deliveries of the outbox, signed per Standard Webhooks.

Each delivery is POSTed as JSON with ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` (HMAC-SHA256 by the ``standardwebhooks`` library, the specification's own
implementation). A 2xx answer settles it; anything else (an error status, a timeout, a refused
connection) is retried after ``base_s * 2**(n-1)`` seconds (capped at an hour) until
``settings.webhook_retry_seconds`` after it was queued, then it is ``failed``. Every attempt is
recorded on the delivery. The URL is checked again before each attempt (SSRF guard,
``mar_core.url_guard``) and the attempt connects to the address checked, not to what the name
resolves to a moment later (DNS rebinding). The schedule lives in the database
(``next_attempt_at``), so retries survive a restart; a retry library keeping its state in
memory would not. The reaper process runs the loop in a thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from api.db import webhooks_repo
from api.db.models import WebhookDelivery, utcnow
from api.db.session import session_scope
from api.services.webhook_urls import webhook_target
from api.settings import Settings
from mar_core.errors import SpecError

logger = logging.getLogger(__name__)

CLAIM_S = 120.0  # a claimed delivery is not picked by another loop for this long
MAX_BACKOFF_S = 3600.0


def backoff_seconds(attempt: int, base_s: float) -> float:
    """Wait before attempt ``attempt + 1`` after ``attempt`` failed ones."""
    return min(base_s * 2 ** (attempt - 1), MAX_BACKOFF_S)


def signed_request(delivery: WebhookDelivery, secret: str, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt."""
    body = json.dumps(delivery.payload, separators=(",", ":"))
    signature = Webhook(secret).sign(delivery.id, now, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def _attempt(
    http: httpx.Client, delivery: WebhookDelivery, secret: str | None, settings: Settings, now: datetime
) -> dict[str, Any]:
    started = time.monotonic()
    record: dict[str, Any] = {"at": now.isoformat(), "status_code": None, "error": None}
    try:
        if secret is None:
            raise SpecError("its webhook endpoint was deleted")
        url, pinned_headers, extensions = webhook_target(delivery.url, settings, "url").pinned()
        body, headers = signed_request(delivery, secret, now)
        resp = http.post(url, content=body, headers={**headers, **pinned_headers}, extensions=extensions)
        record["status_code"] = resp.status_code
        if not resp.is_success:
            record["error"] = f"HTTP {resp.status_code}"
    except SpecError as e:
        record["error"] = e.message
        record["permanent"] = True
    except httpx.HTTPError as e:
        record["error"] = f"{type(e).__name__}: {e}"
    record["duration_s"] = round(time.monotonic() - started, 3)
    return record


def deliver_due(
    factory, settings: Settings, http: httpx.Client, now: datetime | None = None, base_s: float = 5.0
) -> int:
    """One pass: attempt every due delivery once; returns how many were attempted."""
    now = now or utcnow()
    with session_scope(factory) as s:
        due = webhooks_repo.due(s, now)
        claimed = [d for d in due if webhooks_repo.claim(s, d, now + timedelta(seconds=CLAIM_S))]
        secrets_ = {d.id: webhooks_repo.signing_secret(s, d) for d in claimed}
    for delivery in claimed:
        record = _attempt(http, delivery, secrets_[delivery.id], settings, now)
        n = len(delivery.attempts) + 1
        wait = backoff_seconds(n, base_s)
        expired = now + timedelta(seconds=wait) - delivery.created_at > timedelta(
            seconds=settings.webhook_retry_seconds
        )
        if record["error"] is None:
            status, next_at = webhooks_repo.DELIVERED, None
        elif record.pop("permanent", False) or expired:
            status, next_at = webhooks_repo.FAILED, None
        else:
            status, next_at = webhooks_repo.PENDING, now + timedelta(seconds=wait)
        with session_scope(factory) as s:
            webhooks_repo.record_attempt(s, delivery.id, record, status, next_at)
        log = logger.info if status == webhooks_repo.DELIVERED else logger.warning
        log("webhook %s %s -> %s: %s (attempt %d)", delivery.id, delivery.event_type, delivery.url, status, n)
    return len(claimed)


def run_webhook_loop(factory, settings: Settings, stop: threading.Event, interval: float = 1.0) -> None:
    """Deliver every ``interval`` seconds until ``stop`` is set; errors are logged, not raised."""
    with httpx.Client(timeout=10.0, follow_redirects=False) as http:
        while not stop.is_set():
            try:
                deliver_due(factory, settings, http)
            except Exception:
                logger.exception("webhook delivery pass failed; retrying in %.1f s", interval)
            stop.wait(interval)
