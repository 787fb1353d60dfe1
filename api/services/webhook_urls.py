"""Which webhook URLs the service may call (server-side request forgery guard).

A URL's host must match ``webhook_allowed_hosts`` when that list is set (``example.com``, or
``*.example.com`` for its subdomains), and every address it resolves to must be a public one
(not private, loopback, link-local, multicast, reserved or unspecified) unless
``webhook_allow_private`` is set. Checked when a webhook is registered and again before each
delivery (a name may resolve elsewhere later).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from api.settings import Settings
from mar_core.errors import SpecError


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` (``example.com``, or ``*.example.com``: its subdomains)."""
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def resolve_addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to here; ``ValueError`` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise ValueError(f"host {host!r} does not resolve ({e})") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_webhook_url(url: str, settings: Settings, param: str) -> str:
    """``url`` when the service may call it; ``SpecError`` naming ``param`` otherwise."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials")
        if settings.webhook_allowed_hosts and not host_allowed(host, settings.webhook_allowed_hosts):
            raise ValueError(f"host {host!r} is not in MAR_WEBHOOK_ALLOWED_HOSTS")
        if not settings.webhook_allow_private:
            for address in resolve_addresses(host, port):
                if not address.is_global or address.is_multicast:
                    raise ValueError(
                        f"host {host!r} resolves to the non-public address {address} "
                        "(allowed only with MAR_WEBHOOK_ALLOW_PRIVATE)"
                    )
    except ValueError as e:
        raise SpecError(f"{param}: {e}", param=param) from None
    return url
