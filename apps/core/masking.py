"""Masked forms of secrets for responses, pages, audit rows and logs."""
from urllib.parse import urlsplit

MASK = "****"


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/xyz` → `https://hooks.slack.com/…/****`: the scheme and host say
    where it goes; the path and query (where incoming-webhook secrets live) and any credentials never show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…/{MASK}" if parts.scheme and host else MASK
