"""The shared transition(), the runner's fenced write and GPU admission lock only the rows they mean to.
Deployments, revisions and quotas are ordered through their team (Meta.ordering), and a locking `.first()` joined
and locked the team's row too: two drives, each holding one of the team row and the audit chain lock, deadlocked
(bench/dispatch found it)."""
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.transitions import transition
from apps.core import runner
from apps.deployments.models import Deployment
from apps.deployments.rollout import ROLLOUT_KIND
from tests.deployments.factories import deployment_in, gpu_quota, local_cluster


def _locking(queries) -> list[str]:
    return [q["sql"] for q in queries if " FOR " in q["sql"] and "UPDATE" in q["sql"].split(" FOR ", 1)[1]]


def test_a_transition_locks_only_its_row(team):
    revision = deployment_in(team, "healthy").current_revision
    with CaptureQueriesContext(connection) as queries:
        assert transition(row=revision, to="nowhere", allowed={}, action="") is None
    (lock,) = _locking(queries)
    assert "teams_team" not in lock and 'OF "deployments_deploymentrevision"' in lock


def test_the_runner_locks_only_the_leased_row(team):
    deployment = deployment_in(team, "healthy")
    Deployment.objects.filter(pk=deployment.pk).update(lease_owner="test-runner")
    lease = runner.Lease(kind=runner.kind_get(ROLLOUT_KIND), pk=deployment.pk, owner="test-runner", attempt=1)
    with CaptureQueriesContext(connection) as queries, lease.holding() as row:
        assert row.pk == deployment.pk
    (lock,) = _locking(queries)
    assert "teams_team" not in lock and 'OF "deployments_deployment"' in lock


def test_admission_locks_the_quota_row_not_its_team_or_gpu_type(team):
    from django.db import transaction

    from apps.costs.services.admission import _lock_admission

    quota = gpu_quota(cluster=local_cluster(), team=team)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        _lock_admission(team=team, gtype=quota.gpu_type)
    quota_lock, *others = _locking(queries)
    assert "teams_team" not in quota_lock and 'OF "costs_quota"' in quota_lock
    assert others and all("JOIN" not in lock for lock in others)  # the GPU type (capped), not its cluster
