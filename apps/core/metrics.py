"""/metrics for Prometheus, readable only by the scraper (METRICS_TOKEN) or a platform admin.

The page names every endpoint, queue and error counter of the installation, so it is not public.
"""
import hmac

from django.conf import settings
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.views import APIView


class MetricsScraper:
    """request.user for a Prometheus server holding METRICS_TOKEN: may read /metrics and nothing else."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    username = "metrics-scraper"

    def get_username(self) -> str:
        return self.username


class MetricsTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <METRICS_TOKEN>`; any other bearer goes on to the API token check."""

    def authenticate(self, request):
        expected = settings.METRICS_TOKEN.encode()
        header = get_authorization_header(request).split()
        if not expected or len(header) != 2 or header[0].lower() != b"bearer":
            return None
        if not hmac.compare_digest(header[1], expected):
            return None
        return MetricsScraper(), None

    def authenticate_header(self, request):
        return 'Bearer realm="metrics"'


class IsScraperOrPlatformAdmin(BasePermission):
    message = "Only the metrics scraper (METRICS_TOKEN) or a platform admin may read /metrics."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, MetricsScraper) or request.user.is_superuser


class MetricsView(APIView):
    authentication_classes = [MetricsTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    permission_classes = [IsScraperOrPlatformAdmin]

    @extend_schema(exclude=True)
    def get(self, request):
        return ExportToDjangoView(request._request)
