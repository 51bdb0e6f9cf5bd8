"""Where the columnar prediction log's files live (MONITORING_LOG_ROOT): a local directory or s3://bucket/prefix
on any S3-compatible store (pyarrow's S3 filesystem), validated so a half-set configuration fails closed."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_S3_SETTINGS = ("MONITORING_LOG_S3_ENDPOINT", "MONITORING_LOG_S3_REGION", "MONITORING_LOG_S3_ACCESS_KEY",
                "MONITORING_LOG_S3_SECRET_KEY")


@dataclass(frozen=True)
class Store:
    filesystem: object  # pyarrow.fs.FileSystem
    base: str           # the root as the filesystem names it (local absolute path, or bucket/prefix)

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}" if self.base else relative


def store_from(*, root: str, endpoint: str = "", region: str = "", access_key: str = "", secret_key: str = "") -> Store:
    """The filesystem for a root and S3 options; refuses (ImproperlyConfigured) anything half set, so a typo
    never makes logs land somewhere nobody reads."""
    import pyarrow.fs as pafs

    s3_set = [name for name, value in zip(_S3_SETTINGS, (endpoint, region, access_key, secret_key)) if value]
    if not root:
        raise ImproperlyConfigured("MONITORING_LOG_ROOT is empty; set a local directory or s3://bucket/prefix.")
    scheme = urlsplit(root).scheme if "://" in root else ""
    if scheme == "":
        if s3_set:
            raise ImproperlyConfigured(f"{', '.join(s3_set)} set but MONITORING_LOG_ROOT ({root}) is a local path; "
                                       f"set MONITORING_LOG_ROOT=s3://bucket/prefix to use S3, or unset them.")
        import os

        return Store(filesystem=pafs.LocalFileSystem(), base=os.path.abspath(root).rstrip("/"))
    if scheme != "s3":
        raise ImproperlyConfigured(f"MONITORING_LOG_ROOT={root}: only a local directory or s3://bucket/prefix is "
                                   f"supported.")
    bucket_and_prefix = root[len("s3://"):].strip("/")
    if not bucket_and_prefix:
        raise ImproperlyConfigured("MONITORING_LOG_ROOT=s3:// names no bucket; use s3://bucket/prefix.")
    if bool(access_key) != bool(secret_key):
        missing = "MONITORING_LOG_S3_SECRET_KEY" if access_key else "MONITORING_LOG_S3_ACCESS_KEY"
        raise ImproperlyConfigured(f"{missing} is empty while its pair is set; set both keys, or neither to use "
                                   f"the default AWS credential chain (environment, instance role).")
    options = {}
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
            raise ImproperlyConfigured(f"MONITORING_LOG_S3_ENDPOINT={endpoint} must be http(s)://host[:port] "
                                       f"(no path); leave it empty for AWS S3.")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    if access_key:
        options.update(access_key=access_key, secret_key=secret_key)
    if region:
        options["region"] = region
    return Store(filesystem=pafs.S3FileSystem(**options), base=bucket_and_prefix)


@lru_cache(maxsize=8)
def _cached_store(*args) -> Store:
    return store_from(**dict(zip(("root", "endpoint", "region", "access_key", "secret_key"), args)))


def store() -> Store:
    """The configured store (built once per configuration)."""
    return _cached_store(settings.MONITORING_LOG_ROOT, *(getattr(settings, name) for name in _S3_SETTINGS))


def store_check(app_configs=None, **kwargs):
    """System check (manage.py check, and every server start): a misconfigured log store is an error at deploy
    time, not at the first ingest."""
    from django.core.checks import Error

    try:
        store()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="monitoring.E001", hint="See README → Monitoring → Prediction log.")]
    return []
