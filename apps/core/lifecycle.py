"""Archive and delete for shared catalogue objects (teams, clusters, GPU types).

An object other rows point at (deployments, cost samples, audit events) is archived, never deleted: its
history stays readable and a platform admin can restore it; while archived it takes no new work. Only an
object nothing points at may be deleted. The domain apps' services call these and write the audit event.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.errors import Conflict


class Archivable(models.Model):
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Set while archived: kept, takes no new work")
    archived_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        abstract = True

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


def references(obj: models.Model) -> dict[str, int]:
    """How many rows of each other kind point at `obj`: every reverse relation, hidden ones (`related_name="+"`)
    included, except audit events, which are kept without a constraint precisely so deletion never rewrites them."""
    found: dict[str, int] = {}
    for relation in obj._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete and relation.is_relation):
            continue
        if relation.on_delete is models.DO_NOTHING:  # history that outlives its subject (audit events)
            continue
        model = relation.related_model
        rows = model._base_manager.filter(**{relation.field.name: obj})
        if model is type(obj):  # a MIG profile's parent is not "another row" when it is the object itself
            rows = rows.exclude(pk=obj.pk)
        count = rows.count()
        if count:
            label = str(model._meta.verbose_name_plural)
            found[label] = found.get(label, 0) + count
    return found


def require_unreferenced(obj: models.Model, *, label: str) -> None:
    """Refuse (409) to delete what other rows point at, saying what they are."""
    found = references(obj)
    if found:
        listed = ", ".join(f"{count} {kind}" for kind, count in sorted(found.items()))
        raise Conflict(f"{label} is referenced by {listed}; archive it instead (its history is kept and a platform "
                       f"admin can restore it).", code="referenced", extra={"references": found})


def require_active(obj: Archivable, *, label: str) -> None:
    """Refuse (409) new work on an archived object."""
    if obj.archived_at is not None:
        raise Conflict(f"{label} is archived (since {obj.archived_at:%Y-%m-%d}); it takes no new work until a "
                       f"platform admin restores it.", code="archived")


def set_archived(obj: Archivable, *, actor, archived: bool, label: str, audit) -> Archivable:
    """Archive or restore `obj`; `audit(action, changes)` writes the event in the caller's transaction."""
    if obj.is_archived == archived:
        raise Conflict(f"{label} is already {'archived' if archived else 'active'}.", code="unchanged")
    before = obj.archived_at
    obj.archived_at, obj.archived_by = (timezone.now(), actor) if archived else (None, None)
    type(obj)._base_manager.filter(pk=obj.pk).update(archived_at=obj.archived_at, archived_by=obj.archived_by)
    audit("archive" if archived else "restore",
          {"archived_at": [before and before.isoformat(), obj.archived_at and obj.archived_at.isoformat()]})
    return obj


def delete_unreferenced(obj: models.Model, *, label: str, audit) -> None:
    """Delete `obj` if nothing points at it (409 naming what does otherwise); audited before the row goes."""
    require_unreferenced(obj, label=label)
    audit("delete", {"deleted": [str(obj), None]})
    obj.delete()
