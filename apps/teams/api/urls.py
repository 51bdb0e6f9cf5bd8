from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import (ApiTokenViewSet, MembershipViewSet, MeView, PlatformRoleGrantViewSet, TeamViewSet, TokenExchangeView,
                    WebhookEndpointViewSet)

router = SimpleRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("platform-roles", PlatformRoleGrantViewSet, basename="platform-role")
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
    path("auth/token/", TokenExchangeView.as_view(), name="token-exchange"),
    *router.urls,
]
