"""Secrets at rest (cluster credentials, webhook URLs and signing secrets): Fernet, keys from settings,
MultiFernet for rotation.

`CONTROLPLANE_FERNET_KEYS` is a comma-separated list; the first key encrypts, every key decrypts, so
rotating is: prepend a new key, re-encrypt what is stored (`credentials_rotate()`, `webhooks_reencrypt()`),
drop the old key. Production refuses to start without it (settings); only local development derives a key from
SECRET_KEY so the product works as is.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _keys() -> list[bytes]:
    configured = [k.strip() for k in (settings.CONTROLPLANE_FERNET_KEYS or []) if k.strip()]
    if configured:
        return [k.encode() for k in configured]
    if settings.PRODUCTION:
        raise ImproperlyConfigured("CONTROLPLANE_FERNET_KEYS must be set in production; no key is derived there.")
    derived = hashlib.sha256(f"fernet:{settings.SECRET_KEY}".encode()).digest()
    return [base64.urlsafe_b64encode(derived)]


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in _keys()])


def encrypt(plaintext: str) -> bytes:
    return _fernet().encrypt(plaintext.encode())


def decrypt(token: bytes | memoryview) -> str:
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise RuntimeError("A stored secret cannot be decrypted with the configured CONTROLPLANE_FERNET_KEYS "
                           "(was a key removed before rotating?)") from exc


def rotate(token: bytes | memoryview) -> bytes:
    return _fernet().rotate(bytes(token))
