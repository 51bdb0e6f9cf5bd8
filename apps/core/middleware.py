import ipaddress
import re
from functools import lru_cache

from django.conf import settings

from .context import RequestContext, canonical_ip, new_request_id, reset_context, set_context

# A caller-supplied id is echoed only when it is short and plain, so it can't inject into logs.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@lru_cache(maxsize=4)
def _trusted_networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _is_trusted_proxy(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in _trusted_networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request) -> str | None:
    """REMOTE_ADDR; behind trusted proxies (settings.TRUSTED_PROXIES), the rightmost X-Forwarded-For hop that
    isn't one of them. Hops left of it were written by the client and prove nothing."""
    client = canonical_ip(request.META.get("REMOTE_ADDR"))
    if client is None or not _is_trusted_proxy(client):
        return client
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = canonical_ip(hop)
        if address is None:
            break  # garbage from beyond the proxies: keep the last address a trusted proxy vouched for
        client = address
        if not _is_trusted_proxy(address):
            break
    return client


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _VALID_REQUEST_ID.match(supplied) else new_request_id()
        request.request_id = request_id
        token = set_context(RequestContext(request_id=request_id, client_ip=client_ip(request)))
        try:
            response = self.get_response(request)
        finally:
            reset_context(token)
        response["X-Request-ID"] = request_id
        return response


class ApiInputGuardMiddleware:
    """A NUL character in an API request's path or query string is a 400 here: PostgreSQL refuses it in any text
    value, and a filter or selector that passed it on would fail with a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and ("\x00" in request.path or any(
                "\x00" in key or any("\x00" in value for value in values)
                for key, values in request.GET.lists())):
            from django.http import JsonResponse

            from apps.core.api.errors import error_body

            return JsonResponse(error_body("invalid", "The path or query string contains a NUL character (%00); "
                                                      "remove it."), status=400)
        return self.get_response(request)

