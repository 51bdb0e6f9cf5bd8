"""SSRF guard: every server-side request to a user-supplied URL (webhooks, cluster API URLs) goes through here.

A destination is refused when its host is, or resolves to, an address that is not globally routable
(loopback, private, link-local, multicast, reserved, unspecified, shared) or a cloud metadata endpoint,
unless it lies in a CIDR of `SSRF_ALLOWED_CIDRS` (settings) or of an `AllowedNetwork` row (platform admins,
`/api/v1/platform/allowed-networks/`). A metadata address is only allowed by naming it alone
(a /32 or /128), never by a wider range that happens to contain it.

Two checks: `check_url()` resolves the host when a URL is saved and before it is called, for a clear
message; `guarded_session()` re-checks the address each connection actually reaches, so a name that
resolves differently a moment later (DNS rebinding) is still refused. Redirects are never followed.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import InvalidInput
from .models import AllowedNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))


class UnsafeDestination(InvalidInput):
    """The URL points (or resolves) somewhere the control plane must not call."""


def _category(ip: IPAddress) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attribute, category in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
                                ("is_multicast", "a multicast address"), ("is_unspecified", "an unspecified address"),
                                ("is_private", "a private address"), ("is_reserved", "a reserved address")):
        if getattr(ip, attribute):
            return category
    return None if ip.is_global else "not a globally routable address"


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The operator's SSRF_ALLOWED_CIDRS (validated at start-up) and the platform admins' AllowedNetwork rows."""
    cidrs = [*settings.SSRF_ALLOWED_CIDRS, *AllowedNetwork.objects.values_list("cidr", flat=True)]
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def _is_allow_listed(ip: IPAddress) -> bool:
    return any(ip in net and (ip not in METADATA_ADDRESSES or net.num_addresses == 1)
               for net in allowed_networks() if net.version == ip.version)


def check_address(address: str, *, host: str, field: str = "url") -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    category = _category(ip)
    if category is None or _is_allow_listed(ip):
        return
    resolved = "" if host.strip("[]") == address else f" (it resolves to {ip})"
    raise UnsafeDestination(
        f"Refusing to call {host}{resolved}: {ip} is {category}. The control plane only calls public addresses "
        "unless a platform admin allow-lists the range (/api/v1/platform/allowed-networks/ or SSRF_ALLOWED_CIDRS).",
        fields={field: ["Destination not allowed."]}, code="unsafe_destination")


def check_url(url: str, *, field: str = "url", unresolvable_ok: bool = False) -> None:
    """Refuse a URL whose host is, or resolves to, a forbidden address.

    `unresolvable_ok` is for save time: a name that does not resolve yet reaches nothing, and the check
    before each call (which refuses it) is the one that counts.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("Give a full http(s) URL with a host.", fields={field: ["Not an http(s) URL."]})
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination(f"The port in the URL for {host} is not a number.", fields={field: ["Bad port."]})
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        if unresolvable_ok:
            return
        raise UnsafeDestination(f"Cannot resolve {host}: {exc}", fields={field: ["Host does not resolve."]},
                                code="unsafe_destination")
    for address in sorted(addresses):
        check_address(address, host=host, field=field)


class _GuardedConnectionMixin:
    def _new_conn(self):
        sock = super()._new_conn()
        try:
            check_address(sock.getpeername()[0], host=self.host)
        except UnsafeDestination:
            sock.close()
            raise
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class _GuardedSession(requests.Session):
    def request(self, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


def guarded_session() -> requests.Session:
    """A requests session whose every connection is checked against the guard. It ignores proxy and
    netrc settings from the environment (a proxy would hide the real destination) and follows no
    redirects: callers get the 3xx answer and treat it as a refusal."""
    session = _GuardedSession()
    session.trust_env = False
    adapter = _GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
