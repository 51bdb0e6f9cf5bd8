"""Authentication hardening: login lockout (django-axes), API token lifetime and failure throttling, /metrics."""
from datetime import timedelta

from .env import env, env_int
from .tasks import REDIS_URL

AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out (username, address) pair before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's password check, refusing users whose local password is turned off (settings/sso.py).
    "apps.sso.backends.LocalPasswordBackend",
    # OpenID Connect: the callback's code → tokens → a user created or updated from the claims.
    "apps.sso.backends.OidcBackend",
]

# Failed-attempt counters are shared by every web worker, so they live in Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": "controlplane",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# Logins (the UI form, the admin and the API token exchange): after LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is refused (429) for LOGIN_COOLOFF_MINUTES, even with the
# right password. Keyed on the pair so one user mistyping cannot lock everybody behind the same NAT.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.teams.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.teams.throttling.login_lockout_response"

# API tokens: lifetime in days when none is asked for, and the longest allowed.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365)
# Requests presenting a bad, expired or revoked API token: after this many from one address within the
# window, every token request from that address is answered 429 until the window ends.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 10)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 300)

# /metrics answers a scraper sending `Authorization: Bearer <METRICS_TOKEN>`, or a platform admin;
# nobody else. Empty = platform admins only.
METRICS_TOKEN = env("METRICS_TOKEN", "")
