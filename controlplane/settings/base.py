import base64
import importlib.util
import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import PRODUCTION, env, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env("CONTROLPLANE_DATA_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env("DJANGO_SECRET_KEY", "local-dev-secret-key-not-for-production", required_in_production=True)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "apps.core",
    "apps.teams",
    "apps.audit",
    "apps.outbox",
    "apps.registry",
    "apps.deployments",
    "apps.monitoring",
    "apps.costs",
    "apps.demo",
    "apps.sso",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.ApiInputGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.teams.context_processors.current_team_context",
                "apps.sso.context_processors.login_options",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane", required_in_production=True),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "frontend" / "static",
    # plotly.js comes from the installed plotly package (no CDN, no vendored copy).
    ("plotly", Path(importlib.util.find_spec("plotly").origin).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "frontend.staticfiles.HashedStaticFilesStorage"},
}
# Collected files (STATIC_ROOT, hashed names, cached for ten years: immutable) first; what was never collected is served
# straight from the finders, so the installed plotly and swagger packages need no copy to work.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

MLFLOW_TRACKING_URI = env("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
# MLflow's client sends usage telemetry to the internet unless told not to; nothing here calls out. (Its
# telemetry thread also sets and unsets an environment variable, which once failed a seed's MLflow request with a
# KeyError while requests scanned os.environ for proxies.) Set before the lazy mlflow imports read it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's registry webhooks (README → Registry): where MLflow posts (this server's
# /api/v1/registry/mlflow-webhook/ as MLflow reaches it) and the signing secret; with no secret, deliveries
# are refused and only the scheduled passes sync. A delivery older or newer than the window is a replay.
MLFLOW_WEBHOOK_URL = env("MLFLOW_WEBHOOK_URL", "")
MLFLOW_WEBHOOK_SECRET = env("MLFLOW_WEBHOOK_SECRET", "")
MLFLOW_WEBHOOK_TOLERANCE_SECONDS = env_int("MLFLOW_WEBHOOK_TOLERANCE_SECONDS", 300)
# The scheduled registry sync is a watermark pass (models whose MLflow timestamp moved); every this many
# seconds it is a complete pass instead, for what MLflow neither timestamps nor announces (deleted models,
# model tags) and for any webhook delivery that was lost.
REGISTRY_COMPLETE_SYNC_SECONDS = env_int("REGISTRY_COMPLETE_SYNC_SECONDS", 3600)

# Fernet keys for secrets at rest: cluster credentials, webhook URLs and signing secrets (comma-separated,
# first encrypts; required in production, derived from SECRET_KEY only for local development).
CONTROLPLANE_FERNET_KEYS = env_list("CONTROLPLANE_FERNET_KEYS", "", required_in_production=True)
for _key in CONTROLPLANE_FERNET_KEYS:
    try:
        _key_ok = len(base64.urlsafe_b64decode(_key.encode())) == 32
    except ValueError:
        _key_ok = False
    if not _key_ok:
        raise ImproperlyConfigured("CONTROLPLANE_FERNET_KEYS holds a key that is not a Fernet key (url-safe base64 of "
                                   "32 bytes: python -c 'from cryptography.fernet import Fernet; "
                                   "print(Fernet.generate_key().decode())')")

# Ed25519 key the registry signs approved artifact digests with (url-safe base64 of a 32-byte seed:
# python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'). Unset in local
# development: derived from SECRET_KEY; unset in production: digests are not signed (README, registry).
REGISTRY_SIGNING_KEY = env("REGISTRY_SIGNING_KEY", "")

# SSRF guard (apps/core/netguard.py): server-side requests to user-supplied URLs (webhooks, cluster API
# URLs) never reach loopback, private, link-local, multicast, reserved or metadata addresses except inside
# these CIDRs. Local development and the tests allow loopback (receivers and the Kubernetes API emulator
# run there); production allows nothing by default. Kubeconfig `exec` / `auth-provider` entries run
# commands or plugins on our hosts, so they are refused unless allowed here.
SSRF_ALLOWED_CIDRS = env_list("SSRF_ALLOWED_CIDRS", "" if PRODUCTION else "127.0.0.0/8,::1/128")
for _cidr in SSRF_ALLOWED_CIDRS:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"SSRF_ALLOWED_CIDRS: {_cidr!r} is not an IP network ({exc})") from exc
KUBECONFIG_ALLOW_EXEC = env_bool("KUBECONFIG_ALLOW_EXEC", False)

# Deployments: the rollback warm window, the local target's process folder, and the model server image
# rendered into Kubernetes manifests.
DEPLOYMENTS_ROLLBACK_WINDOW_SECONDS = int(env("DEPLOYMENTS_ROLLBACK_WINDOW_SECONDS", "1800"))
DEPLOYMENTS_LOCAL_DIR = Path(env("DEPLOYMENTS_LOCAL_DIR", str(DATA_DIR / "deployments")))
DEPLOYMENTS_READY_TIMEOUT_SECONDS = int(env("DEPLOYMENTS_READY_TIMEOUT_SECONDS", "300"))
# The rollout drive on the runner: its lease (heartbeated while it waits; a dead worker's drive is reclaimed
# after this) and its attempts before the deployment needs attention (backoff 2, 4, 8 … s between them).
DEPLOYMENTS_DRIVE_LEASE_SECONDS = int(env("DEPLOYMENTS_DRIVE_LEASE_SECONDS", "60"))
DEPLOYMENTS_DRIVE_MAX_ATTEMPTS = int(env("DEPLOYMENTS_DRIVE_MAX_ATTEMPTS", "8"))
# Leases of the other control-queue work (a dead worker's attempt is reclaimed after this; each must outlast one
# attempt's slowest call): a promotion's publish to MLflow, a Job's submit, a webhook delivery.
REGISTRY_PUBLISH_LEASE_SECONDS = int(env("REGISTRY_PUBLISH_LEASE_SECONDS", "120"))
DEPLOYMENTS_JOB_LEASE_SECONDS = int(env("DEPLOYMENTS_JOB_LEASE_SECONDS", "120"))
TEAMS_WEBHOOK_LEASE_SECONDS = int(env("TEAMS_WEBHOOK_LEASE_SECONDS", "60"))
# Local target model servers (workers/sandbox.py): the user they run as when the control plane is root,
# their address-space limit in MiB and CPU-seconds limit (0 = none).
DEPLOYMENTS_LOCAL_RUN_AS = env("DEPLOYMENTS_LOCAL_RUN_AS", "nobody")
DEPLOYMENTS_LOCAL_MEMORY_LIMIT_MB = int(env("DEPLOYMENTS_LOCAL_MEMORY_LIMIT_MB", "4096"))
DEPLOYMENTS_LOCAL_CPU_SECONDS = int(env("DEPLOYMENTS_LOCAL_CPU_SECONDS", "0"))
DEPLOYMENTS_SERVER_IMAGE = env("DEPLOYMENTS_SERVER_IMAGE", "ghcr.io/mlflow/mlflow:v3.17.2")
DEPLOYMENTS_KUBE_CONNECT_TIMEOUT = float(env("DEPLOYMENTS_KUBE_CONNECT_TIMEOUT", "3"))
DEPLOYMENTS_KUBE_READ_TIMEOUT = float(env("DEPLOYMENTS_KUBE_READ_TIMEOUT", "10"))

# Costs: NVML samples older than this many days or more than this many seconds in the future are
# refused (and counted) at ingest; the rollup job rebuilds at least this many trailing hours each run.
COSTS_SAMPLE_MAX_AGE_DAYS = int(env("COSTS_SAMPLE_MAX_AGE_DAYS", "45"))
COSTS_SAMPLE_MAX_FUTURE_SECONDS = int(env("COSTS_SAMPLE_MAX_FUTURE_SECONDS", "300"))
COSTS_ROLLUP_LOOKBACK_HOURS = int(env("COSTS_ROLLUP_LOOKBACK_HOURS", "2"))
# A GPU reservation (admitted work whose pods have not started) is released after this many seconds.
COSTS_RESERVATION_TIMEOUT_SECONDS = int(env("COSTS_RESERVATION_TIMEOUT_SECONDS", "3600"))
# Every amount is in this ISO 4217 currency; the FOCUS export names the billing account and provider.
COSTS_CURRENCY = env("COSTS_CURRENCY", "USD")
COSTS_BILLING_ACCOUNT_ID = env("COSTS_BILLING_ACCOUNT_ID", "ml-platform")
COSTS_BILLING_ACCOUNT_NAME = env("COSTS_BILLING_ACCOUNT_NAME", "ML platform chargeback")
COSTS_PROVIDER_NAME = env("COSTS_PROVIDER_NAME", "ML control plane")

# Monitoring: ingestion limits (bigger → 413), rows per side in the Evidently HTML report of a run.
MONITORING_MAX_UPLOAD_BYTES = int(env("MONITORING_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
MONITORING_MAX_BATCH_ROWS = int(env("MONITORING_MAX_BATCH_ROWS", "200000"))
MONITORING_REPORT_SAMPLE = int(env("MONITORING_REPORT_SAMPLE", "5000"))
# A full-data Evidently report (on request) is refused above this many rows per side.
MONITORING_FULL_REPORT_MAX_ROWS = int(env("MONITORING_FULL_REPORT_MAX_ROWS", "200000"))
# A running monitor run whose worker has not reported progress for this long is reclaimed and run again,
# at most MONITORING_RUN_MAX_ATTEMPTS times in all (failed attempts count too); then it needs attention.
MONITORING_RUN_LEASE_SECONDS = int(env("MONITORING_RUN_LEASE_SECONDS", "600"))
MONITORING_RUN_MAX_ATTEMPTS = int(env("MONITORING_RUN_MAX_ATTEMPTS", "3"))
# Columnar prediction log (README → Monitoring → Prediction log): features are Parquet files under this root, a
# local directory or s3://bucket/prefix. For S3-compatible storage set the endpoint (http(s)://host:port, empty
# for AWS), region and keys; a half-set configuration is refused at first use (apps/monitoring/columnar.py).
MONITORING_LOG_ROOT = env("MONITORING_LOG_ROOT", str(DATA_DIR / "prediction-log"))
MONITORING_LOG_S3_ENDPOINT = env("MONITORING_LOG_S3_ENDPOINT", "")
MONITORING_LOG_S3_REGION = env("MONITORING_LOG_S3_REGION", "")
MONITORING_LOG_S3_ACCESS_KEY = env("MONITORING_LOG_S3_ACCESS_KEY", "")
MONITORING_LOG_S3_SECRET_KEY = env("MONITORING_LOG_S3_SECRET_KEY", "")
# Drift at scale (README → Monitoring → Sketch mode): a window with more rows than this is tested from the merged
# partition summaries instead of its rows; a monitor's exact_max_rows overrides it. KLL sketch size k (rank error
# ≈ 1.7/k^0.97: k=2000 → 0.17 %).
MONITORING_EXACT_MAX_ROWS = int(env("MONITORING_EXACT_MAX_ROWS", "5000000"))
MONITORING_KLL_K = int(env("MONITORING_KLL_K", "2000"))
# A sketch-mode window whose partitions lack this many summaries or more fans out: one Celery task per partition.
MONITORING_FANOUT_MIN_PARTITIONS = int(env("MONITORING_FANOUT_MIN_PARTITIONS", "4"))
# Retention (README → Monitoring → Retention): raw partitions older than this many days are dropped, summaries
# kept longer; a monitor's raw_retention_days / summary_retention_days override them for its model version.
MONITORING_RAW_RETENTION_DAYS = int(env("MONITORING_RAW_RETENTION_DAYS", "30"))
MONITORING_SUMMARY_RETENTION_DAYS = int(env("MONITORING_SUMMARY_RETENTION_DAYS", "400"))
