"""The relying party's checks of ID tokens, against the real provider's published keys (tests/harness): a token
signed by the provider passes; altered, foreign-key, wrong-audience, wrong-issuer, expired and replayed ones are
refused with a reason."""
import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.sso.backends import OidcBackend
from apps.sso.errors import LoginRefused
from tests.harness.oidc_provider import CLIENT_ID

pytestmark = pytest.mark.django_db


@pytest.fixture
def claims(oidc_provider):
    now = int(time.time())
    return {"iss": oidc_provider.issuer, "aud": CLIENT_ID, "sub": "grace", "iat": now, "exp": now + 300,
            "nonce": "n-1"}


def verify(token: str):
    return OidcBackend().verify_token(token, nonce="n-1")


def test_a_token_signed_by_the_provider_passes(oidc_provider, claims):
    assert verify(oidc_provider.sign(claims))["sub"] == "grace"


def test_a_tampered_token_is_refused(oidc_provider, claims):
    header, payload, signature = oidc_provider.sign(claims).split(".")
    forged = json.dumps({**claims, "sub": "admin"}).encode()
    tampered = ".".join([header, base64.urlsafe_b64encode(forged).rstrip(b"=").decode(), signature])
    with pytest.raises(LoginRefused, match="signature does not verify"):
        verify(tampered)


def test_a_token_signed_with_another_key_is_refused(oidc_provider, claims):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(LoginRefused, match="signature does not verify"):
        verify(oidc_provider.sign(claims, key=other))
    with pytest.raises(LoginRefused, match="key the provider does not publish"):
        verify(oidc_provider.sign(claims, key=other, kid="attacker-key"))


def test_a_token_for_another_client_is_refused(oidc_provider, claims):
    with pytest.raises(LoginRefused, match="issued for another client"):
        verify(oidc_provider.sign({**claims, "aud": "some-other-app"}))


def test_a_token_from_another_issuer_is_refused(oidc_provider, claims):
    with pytest.raises(LoginRefused, match="another issuer"):
        verify(oidc_provider.sign({**claims, "iss": "https://evil.example"}))


def test_an_expired_token_is_refused(oidc_provider, claims):
    long_ago = int(time.time()) - 3600
    with pytest.raises(LoginRefused, match="expired"):
        verify(oidc_provider.sign({**claims, "iat": long_ago - 300, "exp": long_ago}))


def test_a_token_from_another_login_is_refused(oidc_provider, claims):
    with pytest.raises(LoginRefused, match="nonce"):
        verify(oidc_provider.sign({**claims, "nonce": "someone-elses"}))


def test_an_unsigned_token_is_refused(oidc_provider, claims):
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(LoginRefused, match="'none'"):
        verify(f"{header}.{payload}.")
