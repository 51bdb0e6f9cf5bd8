from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import (ApprovalPolicyViewSet, MlflowWebhookView, ModelVersionViewSet, PolicyFloorViewSet,
                    PromotionRequestViewSet, RegisteredModelViewSet, SyncRunViewSet, SyncView)

router = SimpleRouter()
router.register("models", RegisteredModelViewSet, basename="registry-model")
router.register("versions", ModelVersionViewSet, basename="registry-version")
router.register("policies", ApprovalPolicyViewSet, basename="registry-policy")
router.register("policy-floors", PolicyFloorViewSet, basename="registry-policy-floor")
router.register("promotions", PromotionRequestViewSet, basename="registry-promotion")
router.register("sync-runs", SyncRunViewSet, basename="registry-sync-run")

urlpatterns = [path("sync/", SyncView.as_view(), name="registry-sync"),
               path("mlflow-webhook/", MlflowWebhookView.as_view(), name="registry-mlflow-webhook"), *router.urls]
