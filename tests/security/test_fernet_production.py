"""Production refuses to start without a Fernet key: nothing is silently derived from SECRET_KEY there."""
import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from apps.core import crypto

ROOT = Path(__file__).resolve().parents[2]


def manage_check(**extra_env):
    """`manage.py check` with every other value production requires set."""
    env = {k: v for k, v in os.environ.items() if k != "CONTROLPLANE_FERNET_KEYS"}
    env.update(CONTROLPLANE_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
               DATABASE_URL="postgres://controlplane@127.0.0.1:5432/controlplane", REDIS_URL="redis://127.0.0.1:6379/0",
               AUDIT_HMAC_KEYS=f"k1:{secrets.token_urlsafe(32)}",
               AUDIT_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode(), **extra_env)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_production_without_fernet_key_refuses_to_start():
    result = manage_check()
    assert result.returncode != 0
    assert "Environment variable CONTROLPLANE_FERNET_KEYS must be set in production" in result.stderr


def test_production_starts_with_a_fernet_key_and_refuses_a_malformed_one():
    result = manage_check(CONTROLPLANE_FERNET_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 0, result.stderr
    result = manage_check(CONTROLPLANE_FERNET_KEYS="not-a-key")
    assert result.returncode != 0 and "holds a key that is not a Fernet key" in result.stderr


def test_no_key_is_derived_in_production_even_if_settings_were_bypassed(settings):
    settings.PRODUCTION, settings.CONTROLPLANE_FERNET_KEYS = True, []
    with pytest.raises(ImproperlyConfigured, match="no key is derived"):
        crypto.encrypt("hooks.slack.com secret")
