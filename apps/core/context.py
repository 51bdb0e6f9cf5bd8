"""Per-request context that travels into logs, audit rows and Celery task headers."""
import contextvars
import ipaddress
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_ip: str | None = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def canonical_ip(value) -> str | None:
    """One spelling per address (`2001:DB8::1` → `2001:db8::1`, `::ffff:10.0.0.1` → `10.0.0.1`), as PostgreSQL's
    inet reads it back; None for anything that isn't an address."""
    if value in (None, ""):
        return None
    try:
        address = ipaddress.ip_address(str(value).strip().split("%")[0])
    except ValueError:
        return None
    return str(getattr(address, "ipv4_mapped", None) or address)


def new_request_id() -> str:
    return uuid.uuid4().hex


def set_context(ctx: RequestContext | None) -> contextvars.Token:
    return _current.set(ctx)


def reset_context(token: contextvars.Token) -> None:
    _current.reset(token)


def current_context() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str:
    ctx = _current.get()
    return ctx.request_id if ctx else ""
