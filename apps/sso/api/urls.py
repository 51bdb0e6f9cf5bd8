from rest_framework.routers import SimpleRouter

from .views import GroupMappingViewSet, ServiceAccountViewSet

router = SimpleRouter()
router.register("sso/group-mappings", GroupMappingViewSet, basename="sso-group-mapping")
router.register("service-accounts", ServiceAccountViewSet, basename="service-account")

urlpatterns = router.urls
