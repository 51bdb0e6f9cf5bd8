from rest_framework.routers import SimpleRouter

from .views import OutboxMessageViewSet

router = SimpleRouter()
router.register("messages", OutboxMessageViewSet, basename="outbox-message")

urlpatterns = router.urls
