"""/api/v1/: every app mounts its router here."""
from django.urls import include, path

urlpatterns = [
    path("", include("apps.teams.api.urls")),
    path("", include("apps.sso.api.urls")),
    path("audit/", include("apps.audit.api.urls")),
    path("outbox/", include("apps.outbox.api.urls")),
    path("registry/", include("apps.registry.api.urls")),
    path("costs/", include("apps.costs.api.urls")),
    path("deployments/", include("apps.deployments.api.urls")),
    path("monitoring/", include("apps.monitoring.api.urls")),
    path("platform/", include("apps.teams.api.platform")),
]
