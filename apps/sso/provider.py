"""The provider's discovery document (endpoints, keys URL, logout endpoint), fetched and cached briefly."""
import requests
from django.conf import settings
from django.core.cache import cache

from .errors import ProviderUnavailable

REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def sso_enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def _cache_key() -> str:
    return f"sso:discovery:{settings.OIDC_ISSUER}"


def provider_metadata() -> dict:
    """The discovery document of OIDC_ISSUER; ProviderUnavailable says what went wrong and where."""
    metadata = cache.get(_cache_key()) if settings.OIDC_DISCOVERY_CACHE_SECONDS > 0 else None
    if metadata is not None:
        return metadata
    url = f"{settings.OIDC_ISSUER}/.well-known/openid-configuration"
    name = settings.OIDC_PROVIDER_NAME
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        metadata = response.json()
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{name} (the identity provider) did not answer at {url}: "
                                  f"{type(exc).__name__}. Try again in a moment.") from exc
    except ValueError as exc:
        raise ProviderUnavailable(f"{name} answered {url} with something that is not JSON.") from exc
    missing = [key for key in REQUIRED if not metadata.get(key)]
    if missing:
        raise ProviderUnavailable(f"{name}'s discovery document lacks {', '.join(missing)}.")
    if metadata["issuer"].rstrip("/") != settings.OIDC_ISSUER:
        # OpenID Connect Discovery §4.3: a document naming another issuer must not be used.
        raise ProviderUnavailable(f"{name}'s discovery document names issuer {metadata['issuer']!r}, not the "
                                  f"configured OIDC_ISSUER {settings.OIDC_ISSUER!r}; fix OIDC_ISSUER.")
    if settings.OIDC_DISCOVERY_CACHE_SECONDS > 0:
        cache.set(_cache_key(), metadata, settings.OIDC_DISCOVERY_CACHE_SECONDS)
    return metadata


def provider_metadata_forget() -> None:
    cache.delete(_cache_key())
