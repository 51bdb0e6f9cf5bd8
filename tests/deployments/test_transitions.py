"""Every (from, to) pair of the deployment state machine: allowed ones succeed and audit, others are 409."""
import itertools

import pytest
from django.db import transaction

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment
from apps.deployments.transitions import ALLOWED, deployment_transition
from tests.deployments.factories import deployment_in

PAIRS = list(itertools.product(DeploymentStatus.values, DeploymentStatus.values))


@pytest.mark.parametrize("from_, to", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_transition_pairs(team, from_, to):
    deployment = deployment_in(team, from_)
    before = AuditEvent.objects.count()
    if to in ALLOWED.get(from_, set()):
        with transaction.atomic():
            moved = deployment_transition(deployment=deployment, to=to, action="deployment.test")
        assert moved.status == to and moved.lock_version == 1
        assert AuditEvent.objects.count() == before + 1
    else:
        with pytest.raises(Conflict):
            deployment_transition(deployment=deployment, to=to, action="deployment.test")
        assert Deployment.objects.get(pk=deployment.pk).status == from_
        assert AuditEvent.objects.count() == before


def test_a_stale_writer_gets_409_and_changes_nothing(team):
    deployment = deployment_in(team, "awaiting_promotion")
    stale = Deployment.objects.get(pk=deployment.pk)
    deployment_transition(deployment=deployment, to="paused")
    with pytest.raises(Conflict, match="changed by someone else"):
        deployment_transition(deployment=stale, to="healthy")
    assert Deployment.objects.get(pk=deployment.pk).status == "paused"


def test_transitions_move_updated_at(team):
    deployment = deployment_in(team, "awaiting_promotion")
    Deployment.objects.filter(pk=deployment.pk).update(updated_at="2020-01-01T00:00:00Z")
    moved = deployment_transition(deployment=Deployment.objects.get(pk=deployment.pk), to="progressing")
    assert moved.updated_at.year > 2020
