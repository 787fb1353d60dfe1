"""The one guard of every URL the service calls out to (webhooks, MLflow tracking servers):
server-side request forgery.

``check_url(url, policy)`` returns the URL or raises ``UrlRefused`` (a ``ValueError``) saying
why. The rules, the same wherever a URL is taken or called (registration, submission, each
delivery):

- the scheme is one of ``policy.schemes`` (http, https);
- no control character or white space anywhere in the URL (NUL, ``\\x01``, a newline);
- a host, and no ``user:password@`` part;
- the port, when given, is 1-65535;
- with ``policy.allowed_hosts`` set, the host is one of them (``*.example.com``: a domain);
- every address the host is or resolves to is checked, and so is the IPv4 address an IPv6 one
  carries: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
  (``64:ff9b::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``). A *local* address (this
  host or its link: loopback, link-local and so the cloud metadata service, unspecified,
  ``0.0.0.0/8``, multicast, broadcast, reserved) passes only with ``policy.allow_local``; any
  other non-public one (RFC 1918, unique-local, CGNAT, documentation) only with
  ``policy.allow_private``.

A host that does not resolve here is refused unless ``policy.allow_unresolved`` (a name only the
workers' network knows). Python's ``ipaddress`` does not look inside IPv6 forms for the IPv4
address before 3.13 (``::ffff:127.0.0.1`` is not ``is_loopback`` there), hence ``embedded_ipv4``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]

DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host on this network": reaches loopback on Linux
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?$")
# What a JSON schema can say of it: the scheme; a host name whose last label starts with a letter,
# a dotted IPv4 address or a bracketed IPv6 one; a port in 1-65535; no credentials, control
# characters or white space. Whether the host resolves, and where to, only the guard can tell.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST = rf"(([A-Za-z0-9_-]+\.)*[A-Za-z][A-Za-z0-9_-]*\.?|({_OCTET}\.){{3}}{_OCTET}|\[[0-9A-Fa-f:.]+\])"
URL_PATTERN = rf"^https?://{_HOST}(:{_PORT})?([/?#][^\s\x00-\x1f\x7f-\x9f]*)?$"


class UrlRefused(ValueError):
    """A URL the service must not call; the message says which rule it breaks."""


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs one kind of outbound call may name."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    allow_local: bool = False
    allow_unresolved: bool = False
    schemes: tuple[str, ...] = ("http", "https")
    hosts_setting: str = "the allowed hosts"  # where ``allowed_hosts`` comes from, for messages
    hint: str = ""  # appended to an address refusal: the setting that would allow it


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` (``example.com``, or ``*.example.com``: its subdomains)."""
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def resolve_addresses(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` is or resolves to here; ``UrlRefused`` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise UrlRefused(f"host {host!r} does not resolve ({e})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    value = int(address)
    if 0 < value < 2**32:  # IPv4-compatible ::a.b.c.d (:: and ::1 are checked as themselves)
        found.append(ipaddress.IPv4Address(value))
    if address in NAT64:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def is_local(address: IPAddress) -> bool:
    """This host or its link: loopback, link-local, unspecified, ``0.0.0.0/8``, multicast, reserved."""
    if isinstance(address, ipaddress.IPv4Address) and (address in THIS_NETWORK or address.is_reserved):
        return True
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def address_problem(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why ``address`` (or an IPv4 address it carries) is refused under ``policy``, else None."""
    for each in (*embedded_ipv4(address), address):  # the IPv4 one first: it is where a call goes
        if is_local(each) and not policy.allow_local:
            shown = f"{address} ({each})" if each != address else str(address)
            return f"the local address {shown}: this host, its link or the cloud metadata service"
        if not is_local(each) and not each.is_global and not policy.allow_private:
            shown = f"{address} ({each})" if each != address else str(address)
            return f"the non-public address {shown}"
    return None


def url_port(scheme: str, port_text: str) -> int:
    """The port of a URL (its scheme's default when none is written); ``UrlRefused`` outside 1-65535."""
    if not port_text:
        return DEFAULT_PORTS.get(scheme, 0)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UrlRefused(f"port {port_text!r} is not in 1-65535")
    return int(port_text)


def _literal(host: str, bracketed: bool) -> IPAddress | None:
    """The address a host written as one is (``[v6]`` must be one); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        if bracketed:
            raise UrlRefused(f"host [{host}] is not an IPv6 address") from None
        return None


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the guard, with the addresses it was checked at (none: it did not
    resolve here and the policy allows that)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def pinned(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """``(url, headers, extensions)`` of a request that connects to the first checked address
        rather than resolving the name again (a name may resolve elsewhere by then: DNS
        rebinding): the URL names the address, ``Host`` and the TLS server name (httpx's
        ``sni_hostname``, which its certificate check follows) name the host."""
        if not self.addresses:
            return self.url, {}, {}
        address = self.addresses[0]
        shown = f"[{address}]" if address.version == 6 else str(address)
        parts = urlsplit(self.url)
        default = DEFAULT_PORTS.get(self.scheme) == self.port
        netloc = shown if default else f"{shown}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        headers = {"host": host if default else f"{host}:{self.port}"}
        extensions = {"sni_hostname": self.host} if self.scheme == "https" else {}
        return parts._replace(netloc=netloc).geturl(), headers, extensions


def check_url(url: str, policy: UrlPolicy, resolve: Resolver | None = None) -> str:
    """``url`` when ``policy`` lets the service call it; ``UrlRefused`` saying why otherwise."""
    return checked_url(url, policy, resolve).url


def checked_url(url: str, policy: UrlPolicy, resolve: Resolver | None = None) -> CheckedUrl:
    """``check_url``, returning the addresses it checked (``CheckedUrl.pinned`` to call them)."""
    bad = next((c for c in url if c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        raise UrlRefused(f"must not contain control characters or white space (found {bad!r})")
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise UrlRefused(f"is not a URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in policy.schemes:
        raise UrlRefused(f"must be a URL with one of the schemes {', '.join(policy.schemes)}")
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlRefused("must name a host")
    if "@" in parts.netloc:
        raise UrlRefused("must not carry credentials (user:password@)")
    bracketed = parts.netloc.startswith("[")
    port = url_port(
        scheme, (parts.netloc.rpartition("]")[2] if bracketed else parts.netloc).partition(":")[2]
    )
    literal = _literal(host, bracketed)
    if literal is None and not HOST_NAME.match(host):
        raise UrlRefused(
            f"host {host!r} is not a host name (letters, digits, '.', '-'; an IDN in its xn-- form)"
        )
    if policy.allowed_hosts and not host_allowed(host, policy.allowed_hosts):
        raise UrlRefused(f"host {host!r} is not in {policy.hosts_setting}")
    try:
        addresses = [literal] if literal is not None else (resolve or resolve_addresses)(host, port)
    except UrlRefused:
        if policy.allow_unresolved:
            return CheckedUrl(url, scheme, host, port, ())
        raise
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise UrlRefused(f"host {host!r} is {problem}{policy.hint}")
    return CheckedUrl(url, scheme, host, port, tuple(addresses))
