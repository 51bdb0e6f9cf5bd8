"""Single sign-on (OpenID Connect, apps/sso) and which local password logins remain.

SSO is on when OIDC_ISSUER is set: endpoints and keys come from the issuer's discovery document.
Names follow mozilla-django-oidc (OIDC_RP_*, OIDC_USE_PKCE, ...), which does the protocol work.
"""
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from .env import PRODUCTION, env, env_bool, env_int

# e.g. https://keycloak.example.com/realms/acme or https://login.microsoftonline.com/<tenant-id>/v2.0;
# {OIDC_ISSUER}/.well-known/openid-configuration must answer, and its `issuer` must be exactly this.
OIDC_ISSUER = env("OIDC_ISSUER", "").rstrip("/")
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", "SSO")  # shown as "Sign in with <name>"
OIDC_RP_CLIENT_ID = env("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = env("OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = env("OIDC_SIGN_ALGORITHM", "RS256")
# client_secret_post (the secret in the token request's body) or client_secret_basic (an Authorization header).
OIDC_TOKEN_AUTH_METHOD = env("OIDC_TOKEN_AUTH_METHOD", "client_secret_post")
OIDC_TOKEN_USE_BASIC_AUTH = OIDC_TOKEN_AUTH_METHOD == "client_secret_basic"
# Claims read from the ID token and the userinfo response (userinfo wins; its `sub` must match).
OIDC_CLAIM_USERNAME = env("OIDC_CLAIM_USERNAME", "preferred_username")
OIDC_CLAIM_EMAIL = env("OIDC_CLAIM_EMAIL", "email")
OIDC_CLAIM_NAME = env("OIDC_CLAIM_NAME", "name")
OIDC_CLAIM_GROUPS = env("OIDC_CLAIM_GROUPS", "groups")
# A first SSO login whose username is held by a local user without an SSO identity is refused, unless this
# is on: then that user is linked. Only turn it on when the provider's username claim is authoritative.
OIDC_LINK_EXISTING_USERS = env_bool("OIDC_LINK_EXISTING_USERS", False)
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60)
OIDC_DISCOVERY_CACHE_SECONDS = env_int("OIDC_DISCOVERY_CACHE_SECONDS", 300)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 5)
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of RP-initiated logout
OIDC_AUTHENTICATION_CALLBACK_URL = "sso:callback"
OIDC_CREATE_USER = True

# Local passwords (the login form and the password → token exchange). With LOCAL_PASSWORD_LOGIN off only
# platform admins may still use theirs, and only while LOCAL_ADMIN_LOGIN is on (the way in when the
# provider is down).
LOCAL_PASSWORD_LOGIN = env_bool("LOCAL_PASSWORD_LOGIN", True)
LOCAL_ADMIN_LOGIN = env_bool("LOCAL_ADMIN_LOGIN", True)

if OIDC_ISSUER:
    if not OIDC_RP_CLIENT_ID:
        raise ImproperlyConfigured("OIDC_ISSUER is set, so OIDC_CLIENT_ID must be too (the client registered at the "
                                   "provider)")
    if PRODUCTION and urlparse(OIDC_ISSUER).scheme != "https":
        raise ImproperlyConfigured(f"OIDC_ISSUER must be an https URL in production, not {OIDC_ISSUER!r}")
    if OIDC_RP_SIGN_ALGO[:2] not in ("RS", "ES", "PS"):
        # ID tokens are checked against the provider's published keys (JWKS); a shared-secret HS* token is not.
        raise ImproperlyConfigured(f"OIDC_SIGN_ALGORITHM must be an asymmetric algorithm such as RS256 or ES256, "
                                   f"not {OIDC_RP_SIGN_ALGO!r}")
    if OIDC_TOKEN_AUTH_METHOD not in ("client_secret_post", "client_secret_basic"):
        raise ImproperlyConfigured("OIDC_TOKEN_AUTH_METHOD is client_secret_post or client_secret_basic, not "
                                   f"{OIDC_TOKEN_AUTH_METHOD!r}")
if not (OIDC_ISSUER or LOCAL_PASSWORD_LOGIN or LOCAL_ADMIN_LOGIN):
    raise ImproperlyConfigured("With LOCAL_PASSWORD_LOGIN and LOCAL_ADMIN_LOGIN off, set OIDC_ISSUER: nobody could "
                               "log in")
