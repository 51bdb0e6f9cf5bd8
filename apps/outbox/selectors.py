from django.db.models import QuerySet

from apps.teams.selectors import require_platform_admin

from .models import OutboxMessage


def outbox_message_list(*, user) -> QuerySet[OutboxMessage]:
    """Platform plumbing: only platform admins see the queue and its dead letters."""
    require_platform_admin(user=user)
    return OutboxMessage.objects.select_related("team")
