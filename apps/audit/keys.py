"""Keys held outside the database: HMAC keys of the chain and the Ed25519 key that signs checkpoints."""
import base64
import hashlib
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def hmac_keys() -> dict[str, bytes]:
    """{key id: secret} from settings.AUDIT_HMAC_KEYS (`id:secret` pairs, the first is current)."""
    keys: dict[str, bytes] = {}
    for pair in settings.AUDIT_HMAC_KEYS:
        key_id, _, secret = pair.partition(":")
        if not _KEY_ID.match(key_id) or not secret or key_id in keys:
            raise ImproperlyConfigured(
                f"AUDIT_HMAC_KEYS: {key_id!r} is not a unique `id:secret` pair (id: letters, digits, . _ -)")
        keys[key_id] = secret.encode()
    if not keys:
        raise ImproperlyConfigured("AUDIT_HMAC_KEYS is empty: the audit log needs a key to MAC its rows")
    return keys


def current_hmac_key() -> tuple[str, bytes]:
    return next(iter(hmac_keys().items()))


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of sha256(raw public key): the same id for the signer and an offline auditor."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signing_key() -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(settings.AUDIT_SIGNING_KEY, validate=True)
        return Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError as exc:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed") from exc


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as a PEM file, a file holding base64, or the base64 of the raw 32 bytes."""
    path = Path(text)
    if len(text) < 4096 and path.is_file():
        text = path.read_text()
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def verifying_keys() -> dict[str, Ed25519PublicKey]:
    """The current signing key's public half and the retired ones, by key id."""
    keys = [signing_key().public_key()]
    for text in settings.AUDIT_SIGNING_RETIRED_PUBLIC_KEYS:
        try:
            keys.append(load_public_key(text))
        except ValueError as exc:
            raise ImproperlyConfigured(f"AUDIT_SIGNING_RETIRED_PUBLIC_KEYS: {text[:20]}… is not a public key") from exc
    return {public_key_id(key): key for key in keys}


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def signature_valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
