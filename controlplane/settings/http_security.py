"""HTTPS, cookies, HSTS and the Content-Security-Policy. Production defaults pass `manage.py check --deploy`."""
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE

from .env import PRODUCTION, env, env_bool, env_int

# Behind a TLS-terminating proxy, the header it sets and the value meaning https,
# e.g. DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https". Only set it when the proxy always
# overwrites that header; otherwise a client could claim https.
_proxy_header = env("DJANGO_SECURE_PROXY_SSL_HEADER", "")
if _proxy_header:
    _name, _, _value = _proxy_header.partition(":")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip() or "https")

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
# Probes and the Prometheus scraper reach the pod directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

# Scripts only from our own origin or inline with the per-response nonce (`{{ CSP_NONCE }}`); no eval.
# Inline *styles* stay allowed: templates size chart containers with style="" and Plotly sets styles.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        # Swagger UI and Plotly draw icons from data: URLs; Plotly's "download plot" makes a blob:.
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
