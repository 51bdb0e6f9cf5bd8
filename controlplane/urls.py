from django.contrib import admin
from django.templatetags.static import static
from django.utils.functional import lazy
from django.views.generic import RedirectView
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import health
from apps.core.api import errors
from apps.core.metrics import MetricsView

lazy_static = lazy(static, str)  # the hashed name is known once the static files storage loads, not at import

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("apps.core.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # Unknown API paths answer in the API's error shape, in DEBUG too.
    re_path(r"^api/", errors.api_not_found),
    # Pages link the icon; what asks /favicon.ico by itself (an Evidently report opened alone, a feed reader) is
    # sent there rather than answered with a 404 (a console error on every first visit). Not permanent: the
    # hashed name changes with the icon.
    path("favicon.ico", RedirectView.as_view(url=lazy_static("favicon.svg"))),
    path("", include("frontend.urls")),
]

handler400 = "frontend.views.bad_request"
handler403 = "frontend.views.permission_denied"
handler404 = "frontend.views.not_found"
handler500 = "frontend.views.server_error"
