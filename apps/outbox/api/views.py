from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.views import ScopedReadOnlyViewSet
from apps.outbox.filtersets import OutboxMessageFilterSet
from apps.outbox.selectors import outbox_message_list
from apps.outbox.services import outbox_requeue

from .serializers import OutboxMessageSerializer


class OutboxMessageViewSet(ScopedReadOnlyViewSet):
    serializer_class = OutboxMessageSerializer
    filterset_class = OutboxMessageFilterSet
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "requeue": "platform_admin"}

    def select(self, *, user):
        return outbox_message_list(user=user)

    @extend_schema(request=None, responses={200: OutboxMessageSerializer})
    @action(detail=True, methods=["post"])
    def requeue(self, request, pk=None):
        """Give a dead-lettered message a fresh set of publish attempts."""
        message = outbox_requeue(actor=request.user, message_id=pk)
        return Response(OutboxMessageSerializer(message).data)
