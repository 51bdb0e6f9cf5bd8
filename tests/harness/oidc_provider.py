"""A real OpenID Connect provider on a loopback port: the npm package `oidc-provider` under Node, with test
users whose groups a test sets (and changes between logins).

tests/harness/oidc/ holds its package.json and lock; `make test` runs `npm ci` there, and so does this harness
when node_modules is missing. The provider signs with an RSA key made here, so tests can also craft ID tokens
signed with the provider's own key (or another one) to check the relying party's validation.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.mlflow_server import free_port

HERE = Path(__file__).parent / "oidc"
NODE = os.environ.get("NODE", shutil.which("node") or "/usr/bin/node")
CLIENT_ID = "controlplane-test"
CLIENT_SECRET = "controlplane-test-client-secret"
PASSWORD = "provider-pass-2026"


def ensure_installed() -> None:
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the SSO tests run the npm package oidc-provider (apt-get install nodejs npm).",
                    pytrace=False)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, stdout=subprocess.DEVNULL)


class OidcProvider:
    def __init__(self, *, workdir: Path, redirect_uri: str, post_logout_redirect_uri: str):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.users_file = workdir / "users.json"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-signing-key"
        self.redirect_uri, self.post_logout_redirect_uri = redirect_uri, post_logout_redirect_uri
        self.users: dict[str, dict] = {}
        self.proc: subprocess.Popen | None = None
        self.set_users({})

    def set_user(self, login: str, *, groups=(), password: str = PASSWORD, email: str | None = None,
                 name: str | None = None) -> None:
        """Add or change a user; the provider reads the file at the next login or claims request."""
        self.users[login] = {"password": password, "email": email or f"{login}@example.test",
                             "name": name or login.capitalize(), "groups": list(groups)}
        self.users_file.write_text(json.dumps(self.users))

    def set_users(self, users: dict[str, dict]) -> None:
        self.users = dict(users)
        self.users_file.write_text(json.dumps(self.users))

    def start(self) -> None:
        ensure_installed()
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key))
        jwk.pop("key_ops")  # ["sign"] only: the provider also verifies with it (the id_token_hint of a logout)
        config = {
            "issuer": self.issuer, "port": self.port, "users_file": str(self.users_file),
            "jwks": {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]},
            "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [self.redirect_uri],
                         "post_logout_redirect_uris": [self.post_logout_redirect_uri],
                         "token_endpoint_auth_method": "client_secret_post", "grant_types": ["authorization_code"],
                         "response_types": ["code"]}],
        }
        config_file = self.workdir / "provider.json"
        config_file.write_text(json.dumps(config))
        self.log = (self.workdir / "provider.log").open("w")
        self.proc = subprocess.Popen([NODE, str(HERE / "provider.mjs"), str(config_file)], cwd=HERE,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {(self.workdir / 'provider.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"oidc-provider did not answer on {self.issuer}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()

    def settings(self) -> dict:
        """Django settings that point the control plane at this provider."""
        return {"OIDC_ISSUER": self.issuer, "OIDC_RP_CLIENT_ID": CLIENT_ID, "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
                "OIDC_RP_SCOPES": "openid email profile groups", "OIDC_PROVIDER_NAME": "Test IdP",
                "OIDC_DISCOVERY_CACHE_SECONDS": 0}

    def sign(self, claims: dict, *, key=None, kid: str | None = None) -> str:
        """An ID token signed with the provider's key (or `key`), as a forger or a confused provider would."""
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


def _started(workdir: Path, base_url: str):
    provider = OidcProvider(workdir=workdir, redirect_uri=f"{base_url}/sso/callback",
                            post_logout_redirect_uri=f"{base_url}/login/")
    provider.start()
    return provider


def _configured(provider: OidcProvider, settings) -> OidcProvider:
    provider.set_users({})
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    return provider


@pytest.fixture(scope="session")
def oidc_provider_server(tmp_path_factory):
    """For tests that drive the relying party from Python (the Django test client's host)."""
    provider = _started(tmp_path_factory.mktemp("oidc-provider"), "http://testserver")
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def oidc_provider_live_server(live_server, tmp_path_factory):
    """For browser tests: the provider sends the browser back to Django's live server."""
    provider = _started(tmp_path_factory.mktemp("oidc-provider-live"), live_server.url)
    yield provider
    provider.stop()


@pytest.fixture
def oidc_provider(oidc_provider_server, settings):
    """The running provider with no users yet, and the control plane configured to use it."""
    return _configured(oidc_provider_server, settings)


@pytest.fixture
def oidc_provider_live(oidc_provider_live_server, settings):
    return _configured(oidc_provider_live_server, settings)
