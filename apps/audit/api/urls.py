from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import AuditEventViewSet, AuditExportView

router = SimpleRouter()
router.register("events", AuditEventViewSet, basename="audit-event")

urlpatterns = [path("export", AuditExportView.as_view(), name="audit-export"), *router.urls]
