"""Every (from, to) pair of the promotion state machine: allowed moves succeed and are audited; the others are
409 and change nothing."""
import itertools

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict
from apps.registry.choices import PromotionStatus
from apps.registry.models import Environment, PromotionRequest
from apps.registry.transitions import ALLOWED, transition
from tests.factories import member
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory

PAIRS = list(itertools.product(PromotionStatus.values, PromotionStatus.values))


@pytest.mark.parametrize(("from_", "to"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_transition_pair(from_, to, team):
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team))
    request = PromotionRequest.objects.create(
        team=team, version=version, environment=Environment.objects.get(name="production"),
        requested_by=member(team, "ml_engineer"), status=from_, expires_at=timezone.now())
    if to in ALLOWED[from_]:
        moved = transition(request, to=to, actor=None, action=f"registry.test.{to}")
        assert moved.status == to
        assert AuditEvent.objects.filter(action=f"registry.test.{to}", object_id=str(request.pk),
                                         changes__status=[from_, to]).exists()
    else:
        with pytest.raises(Conflict):
            transition(request, to=to, actor=None, action=f"registry.test.{to}")
        request.refresh_from_db()
        assert request.status == from_ and not AuditEvent.objects.filter(object_id=str(request.pk)).exists()


def test_concurrent_change_is_a_conflict(team):
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team))
    request = PromotionRequest.objects.create(
        team=team, version=version, environment=Environment.objects.get(name="production"),
        requested_by=member(team, "ml_engineer"))
    PromotionRequest.objects.filter(pk=request.pk).update(status=PromotionStatus.CANCELLED)
    with pytest.raises(Conflict, match="changed meanwhile"):
        transition(request, to=PromotionStatus.APPROVED, actor=None, action="registry.promotion.approved")
