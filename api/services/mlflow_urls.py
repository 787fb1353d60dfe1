"""Which MLflow tracking servers a job's spec may name (server-side request forgery guard).

A job's ``tracking.mlflow.uri`` is called by the workers, from inside the deployment's network.
Tracking servers usually live on that network, so private addresses are allowed; what is never
allowed is a host on the worker itself or the cloud's metadata service: loopback, link-local,
unspecified and multicast addresses (a literal address, or a name that resolves to one here).
With ``MAR_MLFLOW_ALLOWED_HOSTS`` set, the host must be one of them (``*.example.com`` for a
domain), and then its addresses are the operator's choice. A name the API cannot resolve is
accepted: the workers' network may know it, and MLflow errors only stop a run's logging.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from api.services.webhook_urls import host_allowed, resolve_addresses
from api.settings import Settings
from mar_core.errors import SpecError

PARAM = "tracking.mlflow.uri"


def _never_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast


def check_mlflow_uri(uri: str, settings: Settings) -> str:
    """``uri`` when a job may send its metrics there; ``SpecError`` naming the field otherwise."""
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise ValueError(
                "must be an http(s) tracking server; a local store is the deployment's setting (MAR_MLFLOW_URI)"
            )
        if settings.mlflow_allowed_hosts:
            if not host_allowed(host, settings.mlflow_allowed_hosts):
                raise ValueError(f"host {host!r} is not in MAR_MLFLOW_ALLOWED_HOSTS")
            return uri
        try:
            addresses = resolve_addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
        except ValueError:
            return uri  # the workers' network decides
        for address in addresses:
            if _never_allowed(address):
                raise ValueError(
                    f"host {host!r} is the worker itself or a metadata service ({address}); name it in "
                    "MAR_MLFLOW_ALLOWED_HOSTS to allow it"
                )
    except ValueError as e:
        raise SpecError(f"{PARAM}: {e}", param=PARAM) from None
    return uri
