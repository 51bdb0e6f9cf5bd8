from django.db.models import QuerySet

from apps.teams.selectors import require_platform_admin

from .models import AllowedNetwork


def allowed_network_list(*, user) -> QuerySet[AllowedNetwork]:
    require_platform_admin(user=user)
    return AllowedNetwork.objects.select_related("created_by")
