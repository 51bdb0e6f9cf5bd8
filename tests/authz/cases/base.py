from dataclasses import dataclass, field
from typing import Callable


def _none(team, actor):
    return None


def _archived(obj):
    """`obj` archived (as a platform admin would), for the restore routes."""
    from django.utils import timezone

    type(obj).objects.filter(pk=obj.pk).update(archived_at=timezone.now())
    obj.refresh_from_db()
    return obj


@dataclass
class Case:
    # Creates the object the route acts on, in `team` (owned by `actor` for the caller's own objects).
    make: Callable = _none
    kwargs: Callable = lambda obj: {"pk": obj.pk}
    body: dict[str, Callable] = field(default_factory=dict)  # method -> fn(team, obj) -> dict
    query: Callable = lambda team, obj: {}
    success: dict[str, int] = field(default_factory=dict)
    # Routes that return a collection: the outcome is "is the object in it", not a status code.
    list_like: bool = False
    listed: Callable = lambda response, obj: str(obj.pk) in [str(row["id"]) for row in response.json()["results"]]
