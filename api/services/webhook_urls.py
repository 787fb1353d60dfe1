"""Which webhook URLs the service may call: ``mar_core.url_guard`` under the webhook settings.

A URL's host must match ``webhook_allowed_hosts`` when that list is set (``example.com``, or
``*.example.com`` for its subdomains), must resolve here, and every address it resolves to must
be a public one unless ``webhook_allow_private`` is set. Checked when a webhook is registered
(``POST /webhooks``, a job's ``webhooks``) and again before each delivery, which then connects
to the address it checked (a name may resolve elsewhere later, or between check and call).
"""

from __future__ import annotations

from api.settings import Settings
from mar_core.errors import SpecError
from mar_core.url_guard import CheckedUrl, UrlPolicy, UrlRefused, checked_url


def webhook_policy(settings: Settings) -> UrlPolicy:
    """The URL guard's rules for webhooks under ``settings``."""
    return UrlPolicy(
        allowed_hosts=tuple(settings.webhook_allowed_hosts),
        allow_private=settings.webhook_allow_private,
        allow_local=settings.webhook_allow_private,
        hosts_setting="MAR_WEBHOOK_ALLOWED_HOSTS",
        hint=" (allowed only with MAR_WEBHOOK_ALLOW_PRIVATE)",
    )


def check_webhook_url(url: str, settings: Settings, param: str) -> str:
    """``url`` when the service may call it; ``SpecError`` naming ``param`` otherwise."""
    return webhook_target(url, settings, param).url


def webhook_target(url: str, settings: Settings, param: str) -> CheckedUrl:
    """``url`` checked, with the addresses to call it at (``CheckedUrl.pinned``); ``SpecError``
    naming ``param`` when the service may not call it."""
    try:
        return checked_url(url, webhook_policy(settings))
    except UrlRefused as e:
        raise SpecError(f"{param}: {e}", param=param) from None
