from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("quotas", views.QuotaViewSet, basename="costs-quota")
router.register("gpu-types", views.GpuTypeViewSet, basename="costs-gpu-type")
router.register("prices", views.GpuPriceViewSet, basename="costs-price")
router.register("budgets", views.BudgetViewSet, basename="costs-budget")
router.register("alerts", views.BudgetAlertViewSet, basename="costs-alert")
router.register("allocations", views.AllocationViewSet, basename="costs-allocation")
router.register("node-tokens", views.NodeTokenViewSet, basename="costs-node-token")

urlpatterns = [
    # With or without the trailing slash: callers are scripts as much as browsers.
    re_path(r"^admission/?$", views.AdmissionView.as_view(), name="costs-admission"),
    path("report/", views.CostReportView.as_view(), name="costs-report"),
    path("focus/", views.FocusExportView.as_view(), name="costs-focus"),
    path("samples/", views.SampleIngestView.as_view(), name="costs-samples"),
    path("months/", views.CostMonthListView.as_view(), name="costs-month-list"),
    path("months/<str:month>/close/", views.CostMonthCloseView.as_view(), name="costs-month-close"),
    *router.urls,
]
