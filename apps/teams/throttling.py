"""Throttles on guessing credentials.

Passwords (UI login, admin, token exchange) are counted by django-axes per (username, client address);
this module gives axes our client address and lockout response. Bad API tokens are counted here per
client address in the Redis cache.
"""
from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import render
from redis.exceptions import RedisError
from rest_framework import exceptions

from apps.core.context import current_context


def client_ip(request) -> str | None:
    """The address the request middleware decided is the client's (the one audit rows record)."""
    ctx = current_context()
    if ctx is not None and ctx.client_ip:
        return ctx.client_ip
    return request.META.get("REMOTE_ADDR") or None


def login_lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (f"Too many failed logins for this username from your address; it is locked for {minutes} minutes "
            f"(the right password is refused too until then).")


def login_lockout_response(request, original_response=None, credentials=None):
    """What axes answers once a (username, address) pair is locked: 429, in the API's error shape or on
    the login page."""
    if request.path.startswith("/api/"):
        # Imported here: the API error module imports DRF views, which load this module's authenticator.
        from apps.core.api.errors import error_body

        return JsonResponse(error_body("throttled", login_lockout_message()), status=429)
    return render(request, "registration/login.html", {"lockout_message": login_lockout_message()}, status=429)


class TokenServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"


def _failure_key(ip: str | None) -> str:
    return f"api-token-failures:{ip or 'unknown'}"


def _guard(action):
    # Fail closed: without the counter store nobody can tell whether the address is guessing tokens.
    try:
        return action()
    except RedisError as exc:
        raise TokenServiceUnavailable(
            f"API token authentication is unavailable: the throttle store (Redis) does not answer ({exc}). "
            f"Check CACHE_URL / REDIS_URL.") from exc


def token_failures_check(*, ip: str | None) -> None:
    """Refuse (429) every API token request from an address that recently sent too many bad tokens."""
    failures = _guard(lambda: cache.get(_failure_key(ip), 0))
    if failures >= settings.API_TOKEN_FAILURE_LIMIT:
        window = settings.API_TOKEN_FAILURE_WINDOW_SECONDS
        raise exceptions.Throttled(
            wait=window,
            detail=f"Too many failed API token attempts from your address ({failures}); wait up to "
                   f"{max(1, window // 60)} minutes, then send a valid, unexpired token.",
        )


def token_failure_record(*, ip: str | None) -> None:
    key = _failure_key(ip)

    def count():
        # The window starts at the first failure; add() is a no-op when the key already exists.
        cache.add(key, 0, timeout=settings.API_TOKEN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add() and incr()
            cache.set(key, 1, timeout=settings.API_TOKEN_FAILURE_WINDOW_SECONDS)

    _guard(count)


def token_failures_clear(*, ip: str | None) -> None:
    _guard(lambda: cache.delete(_failure_key(ip)))
