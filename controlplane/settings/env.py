"""One place that reads the environment.

Every setting has a working local default so `make run` needs no configuration; in production
(`CONTROLPLANE_ENV=production`) a value marked required must be set or start-up fails loudly.
"""
import os

from django.core.exceptions import ImproperlyConfigured

PRODUCTION = os.environ.get("CONTROLPLANE_ENV", "local") == "production"


def env(name: str, default: str | None = None, *, required_in_production: bool = False) -> str:
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    if required_in_production and PRODUCTION:
        raise ImproperlyConfigured(f"Environment variable {name} must be set in production")
    if default is None:
        raise ImproperlyConfigured(f"Environment variable {name} is required")
    return default


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable {name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: str, *, required_in_production: bool = False) -> list[str]:
    raw = env(name, default, required_in_production=required_in_production)
    return [item.strip() for item in raw.split(",") if item.strip()]
