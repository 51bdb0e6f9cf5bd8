from django.conf import settings

from .provider import sso_enabled


def login_options(request) -> dict:
    """What a login page offers (the SSO button, the password form for everyone or platform admins only), for
    every page that renders it: the login view, axes' lockout page, the SSO error pages."""
    return {"sso_enabled": sso_enabled(), "sso_provider_name": settings.OIDC_PROVIDER_NAME,
            "password_login": settings.LOCAL_PASSWORD_LOGIN or settings.LOCAL_ADMIN_LOGIN,
            "password_login_admins_only": not settings.LOCAL_PASSWORD_LOGIN}
