"""Which MLflow tracking servers a job's spec may name: ``mar_core.url_guard`` under the MLflow
settings.

A job's ``tracking.mlflow.uri`` is called by the workers, from inside the deployment's network.
Tracking servers usually live on that network, so private addresses are allowed; what is never
allowed is a host on the worker itself or the cloud's metadata service: loopback, link-local,
unspecified and multicast addresses (a literal address, one an IPv6 form carries, or a name that
resolves to one here), and neither are credentials in the URI. With ``MAR_MLFLOW_ALLOWED_HOSTS``
set, the host must be one of them (``*.example.com`` for a domain), and then its addresses are
the operator's choice. A name the API cannot resolve is accepted: the workers' network may know
it, and MLflow errors only stop a run's logging.
"""

from __future__ import annotations

from api.settings import Settings
from mar_core.errors import SpecError
from mar_core.url_guard import UrlPolicy, UrlRefused, check_url

PARAM = "tracking.mlflow.uri"


def mlflow_policy(settings: Settings) -> UrlPolicy:
    """The URL guard's rules for a spec's tracking server under ``settings``."""
    named = bool(settings.mlflow_allowed_hosts)
    return UrlPolicy(
        allowed_hosts=tuple(settings.mlflow_allowed_hosts),
        allow_private=True,
        allow_local=named,
        allow_unresolved=True,
        hosts_setting="MAR_MLFLOW_ALLOWED_HOSTS",
        hint="; name it in MAR_MLFLOW_ALLOWED_HOSTS to allow it",
    )


def check_mlflow_uri(uri: str, settings: Settings) -> str:
    """``uri`` when a job may send its metrics there; ``SpecError`` naming the field otherwise."""
    try:
        return check_url(uri, mlflow_policy(settings))
    except UrlRefused as e:
        reason = str(e)
        if not uri.lower().startswith(("http:", "https:")):
            reason = "must be an http(s) tracking server; a local store is the deployment's setting (MAR_MLFLOW_URI)"
        raise SpecError(f"{PARAM}: {reason}", param=PARAM) from None
