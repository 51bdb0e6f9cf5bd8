"""Authentication backends: local passwords (within what settings allow) and OpenID Connect.

mozilla-django-oidc does the code flow (state, nonce, PKCE, the token request); this module adds what it
leaves out: endpoints from discovery, ID token checks of issuer, audience and expiry (the library does not
check the audience), claims from the ID token and userinfo together, and users matched on (issuer, subject).
"""
import jwt
import requests
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from . import services
from .errors import LoginRefused, ProviderUnavailable
from .provider import provider_metadata


class LocalPasswordBackend(ModelBackend):
    """Django's password check; with LOCAL_PASSWORD_LOGIN off only platform admins, and only while
    LOCAL_ADMIN_LOGIN is on. Sessions follow the same rule (get_user asks user_can_authenticate too)."""

    def user_can_authenticate(self, user) -> bool:
        if not super().user_can_authenticate(user):
            return False
        if settings.LOCAL_PASSWORD_LOGIN:
            return True
        return user.is_superuser and settings.LOCAL_ADMIN_LOGIN


class OidcBackend(OIDCAuthenticationBackend):
    def __init__(self, *args, **kwargs):
        # The parent reads fixed endpoint settings here; ours come from discovery when a login needs them,
        # so a password login never waits on the provider.
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (the parent's attribute names)
        return provider_metadata()["token_endpoint"]

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str | None:  # noqa: N802
        return provider_metadata().get("userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return provider_metadata()["jwks_uri"]

    def authenticate(self, request, **kwargs):
        if not settings.OIDC_ISSUER:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException as exc:
            response = getattr(exc, "response", None)
            if response is not None and 400 <= response.status_code < 500:  # it answered: the code or client is refused
                raise LoginRefused(f"{settings.OIDC_PROVIDER_NAME} (the identity provider) refused the login: "
                                   f"{_describe(exc)} Start again; if it repeats, check OIDC_CLIENT_ID, "
                                   f"OIDC_CLIENT_SECRET and OIDC_TOKEN_AUTH_METHOD.") from exc
            raise ProviderUnavailable(f"{settings.OIDC_PROVIDER_NAME} (the identity provider) failed the login: "
                                      f"{_describe(exc)}") from exc

    def get_user(self, user_id):
        return ModelBackend.get_user(self, user_id)  # refuses deactivated users, as for every session

    def retrieve_matching_jwk(self, token):
        try:
            return super().retrieve_matching_jwk(token)
        except SuspiciousOperation:
            raise LoginRefused("The ID token is signed with a key the provider does not publish; refusing it.")

    def verify_token(self, token, **kwargs):
        """The ID token's signature (a key from the provider's JWKS), issuer, audience, expiry and nonce."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise LoginRefused("The provider's ID token is not a signed JWT; refusing it.")
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise LoginRefused(f"The ID token is signed with {header.get('alg')!r}, not the expected "
                               f"{self.OIDC_RP_SIGN_ALGO} (OIDC_SIGN_ALGORITHM); refusing it.")
        key = self.retrieve_matching_jwk(token)
        issuer = provider_metadata()["issuer"]
        try:
            payload = jwt.decode(token, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
                                 issuer=issuer, leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                                 options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.InvalidSignatureError:
            raise LoginRefused("The ID token's signature does not verify: it was altered or signed by another "
                               "key. Refusing it.")
        except jwt.ExpiredSignatureError:
            raise LoginRefused("The ID token has expired; start the login again (check the server's clock if "
                               "this repeats).")
        except jwt.InvalidAudienceError:
            raise LoginRefused(f"The ID token was issued for another client, not {self.OIDC_RP_CLIENT_ID!r} "
                               f"(OIDC_CLIENT_ID); refusing it.")
        except jwt.InvalidIssuerError:
            raise LoginRefused(f"The ID token was issued by another issuer, not {issuer!r}; refusing it.")
        except jwt.PyJWTError as exc:
            raise LoginRefused(f"The ID token is not acceptable: {exc}.")
        audiences = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise LoginRefused("The ID token names several audiences but was not issued to this client (azp).")
        if "nonce" in kwargs and payload.get("nonce") != kwargs["nonce"]:
            raise LoginRefused("The ID token's nonce does not match this login (a replayed token?); start again.")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        if not self.OIDC_OP_USER_ENDPOINT:
            return {}
        return super().get_userinfo(access_token, id_token, payload)

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub", payload["sub"]) != payload["sub"]:
            # OpenID Connect Core §5.3.2: userinfo for another subject must not be used.
            raise LoginRefused("The provider's userinfo answer is about another user than the ID token; refusing it.")
        return services.sso_login(issuer=payload["iss"], claims={**payload, **userinfo})


def _describe(exc: requests.RequestException) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"it answered HTTP {response.status_code} to {response.request.method} {response.url.split('?')[0]}."
    return f"it could not be reached ({type(exc).__name__})."
