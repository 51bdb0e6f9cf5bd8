"""Why an SSO login did not happen, in words for the person at the login page."""
from apps.core.errors import DomainError


class ProviderUnavailable(DomainError):
    """The identity provider did not answer, or answered something unusable (discovery, keys, token endpoint)."""

    status_code = 503
    code = "sso_unavailable"


class LoginRefused(DomainError):
    """The provider answered, but what it sent must not log anybody in (bad token, unknown user, ...)."""

    status_code = 403
    code = "sso_refused"
