"""Audit log: the keys outside the database that make the chain tamper-evident, signed checkpoints,
and the proxies whose X-Forwarded-For is believed for the client IP. See README → Security."""
import base64
import hashlib
import ipaddress

from django.core.exceptions import ImproperlyConfigured

from .base import DATA_DIR
from .env import PRODUCTION, env, env_int, env_list

# HMAC-SHA256 keys of the chain as `id:secret` pairs; the first one MACs new rows, the others only verify
# older rows (rotation: prepend a new pair, keep the old ones). Secrets: at least 32 random characters.
AUDIT_HMAC_KEYS = env_list("AUDIT_HMAC_KEYS", "dev:local-dev-audit-hmac-key-not-for-production",
                           required_in_production=True)
if PRODUCTION and any(len(pair.partition(":")[2]) < 32 for pair in AUDIT_HMAC_KEYS):
    raise ImproperlyConfigured("AUDIT_HMAC_KEYS: every `id:secret` pair needs a secret of at least 32 characters")
# Ed25519 private key (base64 of the 32-byte seed) that signs checkpoints. The local default is a fixed,
# public seed: fine for a demo, worthless as evidence. Retired keys' public halves (base64, raw 32 bytes)
# keep older checkpoints verifiable after a rotation.
AUDIT_SIGNING_KEY = env("AUDIT_SIGNING_KEY",
                        base64.b64encode(hashlib.sha256(b"local-dev-audit-signing-key").digest()).decode(),
                        required_in_production=True)
try:
    _seed_ok = len(base64.b64decode(AUDIT_SIGNING_KEY, validate=True)) == 32
except ValueError:
    _seed_ok = False
if not _seed_ok:
    raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed "
                               "(python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')")
AUDIT_SIGNING_RETIRED_PUBLIC_KEYS = env_list("AUDIT_SIGNING_RETIRED_PUBLIC_KEYS", "")
# Checkpoints are also appended to this JSON Lines file, outside the database ({database} = its name, so
# each database has its own sink). A checkpoint is signed after this many events, and by the beat job
# `audit-checkpoint` every AUDIT_CHECKPOINT_SECONDS (settings/tasks.py).
AUDIT_CHECKPOINT_FILE = env("AUDIT_CHECKPOINT_FILE", str(DATA_DIR / "audit" / "checkpoints-{database}.jsonl"))
AUDIT_CHECKPOINT_EVERY_EVENTS = env_int("AUDIT_CHECKPOINT_EVERY_EVENTS", 1000)

# CIDRs of the reverse proxies in front of the web server. Only a request arriving from one of them has its
# X-Forwarded-For read (the rightmost hop that isn't a trusted proxy is the client); otherwise REMOTE_ADDR.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
for _cidr in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_cidr!r} is not an IP network ({exc})") from exc
