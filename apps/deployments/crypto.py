"""Cluster credentials use the shared Fernet helper (apps.core.crypto); kept so existing imports work."""
from apps.core.crypto import decrypt, encrypt, rotate  # noqa: F401
