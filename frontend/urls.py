"""UI routes: each app's views.py is mounted here under its own prefix."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.sso import views as sso_views

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", sso_views.logout, name="logout"),
    path("sso/", include(("apps.sso.urls", "sso"))),
    path("registry/", include(("apps.registry.urls", "registry"))),
    path("deployments/", include(("apps.deployments.urls", "deployments"))),
    path("monitoring/", include(("apps.monitoring.urls", "monitoring"))),
    path("costs/", include(("apps.costs.urls", "costs"))),
    path("audit/", include(("apps.audit.urls", "audit"))),
    path("settings/", include(("apps.teams.urls", "teams"))),
]
