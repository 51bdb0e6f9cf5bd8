from rest_framework.routers import SimpleRouter

from .views import AlertViewSet, LabelViewSet, MonitorViewSet, PredictionBatchViewSet, ReferenceViewSet, RunViewSet

router = SimpleRouter()
router.register("references", ReferenceViewSet, basename="monitoring-reference")
router.register("monitors", MonitorViewSet, basename="monitoring-monitor")
router.register("runs", RunViewSet, basename="monitoring-run")
router.register("alerts", AlertViewSet, basename="monitoring-alert")
router.register("predictions", PredictionBatchViewSet, basename="monitoring-prediction-batch")
router.register("labels", LabelViewSet, basename="monitoring-label")

urlpatterns = router.urls
