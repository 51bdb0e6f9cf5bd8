"""Liveness and readiness probes."""
import time

import redis
import requests
from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    timeout = settings.READINESS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def _check_mlflow() -> None:
    response = requests.get(f"{settings.MLFLOW_TRACKING_URI.rstrip('/')}/health",
                            timeout=settings.READINESS_TIMEOUT_SECONDS)
    response.raise_for_status()


CHECKS = {"postgresql": _check_database, "redis": _check_redis, "mlflow": _check_mlflow}


def readiness() -> dict:
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    return results


def healthz(request):
    return JsonResponse({"status": "alive"})


def readyz(request):
    checks = readiness()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ready" if not failed else "not ready", "failed": failed, "checks": checks}
    return JsonResponse(body, status=200 if not failed else 503)
