"""Reads for the costs app. Team-owned rows always go through scope_to_teams."""
from django.db.models import QuerySet

from apps.teams.selectors import scope_to_teams

from .models import GpuPrice, GpuType, Quota


def quota_list(*, user) -> QuerySet[Quota]:
    return scope_to_teams(Quota.objects.select_related("team", "gpu_type__cluster", "cohort"), user=user)


def gpu_type_list() -> QuerySet[GpuType]:
    """The catalog is not team-owned: every signed-in user may read it (prices are not secret)."""
    return GpuType.objects.select_related("cluster", "parent")


def gpu_price_list() -> QuerySet[GpuPrice]:
    return GpuPrice.objects.select_related("gpu_type__cluster")
