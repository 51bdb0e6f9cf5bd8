import hmac
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken
from .services import TOKEN_PREFIX, hash_secret
from .throttling import client_ip, token_failure_record, token_failures_check

# last_used_at is refreshed at most this often, so reads don't turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer cp_<prefix>_<secret>` (the `Token` keyword works too).

    The user it returns carries the token's name (for audit), scope (which selectors.team_ids_for
    intersects with the user's roles) and expiry (which tokens it creates may not outlive). Every
    refusal counts against the client address; too many and the address is throttled (throttling.py).
    """

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        ip = client_ip(request)
        token_failures_check(ip=ip)
        try:
            token = self._verify(header)
        except exceptions.AuthenticationFailed:
            token_failure_record(ip=ip)
            raise
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.user.auth_token_name = token.name
        token.user.api_token_scope = token.scope
        token.user.api_token_expires_at = token.expires_at
        return token.user, token

    def _verify(self, header: list[str]) -> ApiToken:
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        parts = header[1].split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise exceptions.AuthenticationFailed("Malformed API token; it looks like cp_<prefix>_<secret>.")
        _, prefix, secret = parts
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        if token is None or not hmac.compare_digest(token.secret_hash, hash_secret(secret)):
            raise exceptions.AuthenticationFailed("Invalid API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(f"API token '{token.name}' was revoked; create a new one.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                f"API token '{token.name}' expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is deactivated.")
        return token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
