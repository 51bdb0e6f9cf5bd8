"""Every (from, to) pair of the revision and job state machines: an allowed move writes the status and one
audit event in the same transaction; any other leaves the row and the audit log as they were."""
import itertools

import pytest

from apps.audit.models import AuditEvent
from apps.deployments.choices import JobStatus, RevisionStatus
from apps.deployments.models import DeploymentRevision, Job
from apps.deployments.transitions import JOB_ALLOWED, REVISION_ALLOWED, job_transition, revision_transition
from tests.deployments.factories import deployment_in, kube_cluster

REVISION_PAIRS = list(itertools.product(RevisionStatus.values, RevisionStatus.values))
JOB_PAIRS = list(itertools.product(JobStatus.values, JobStatus.values))


@pytest.mark.parametrize("from_, to", REVISION_PAIRS, ids=[f"{a}->{b}" for a, b in REVISION_PAIRS])
def test_revision_transition_pairs(team, from_, to):
    revision = deployment_in(team, "failed").current_revision
    DeploymentRevision.objects.filter(pk=revision.pk).update(status=from_)
    revision.refresh_from_db()
    before = AuditEvent.objects.count()
    moved = revision_transition(revision=revision, to=to, fields={"message": "moved"})
    row = DeploymentRevision.objects.get(pk=revision.pk)
    if to in REVISION_ALLOWED[from_]:
        assert moved and (row.status, row.message) == (to, "moved")
        assert AuditEvent.objects.count() == before + 1
        event = AuditEvent.objects.order_by("-pk").first()
        assert event.action == f"revision.{to}" and event.changes["status"] == [from_, to]
        assert event.team_id == team.pk
    else:
        assert not moved and row.status == from_ and row.message == ""
        assert AuditEvent.objects.count() == before


def test_a_revision_move_checks_the_status_in_the_database_not_the_callers_copy(team):
    revision = deployment_in(team, "failed").current_revision  # ready
    stale = DeploymentRevision.objects.get(pk=revision.pk)
    assert revision_transition(revision=revision, to=RevisionStatus.SUPERSEDED)
    assert not revision_transition(revision=stale, to=RevisionStatus.ARTIFACT_CHANGED)  # superseded now
    assert not revision_transition(revision=revision, to=RevisionStatus.PENDING, expected={RevisionStatus.READY})
    assert DeploymentRevision.objects.get(pk=revision.pk).status == RevisionStatus.SUPERSEDED


@pytest.mark.parametrize("from_, to", JOB_PAIRS, ids=[f"{a}->{b}" for a, b in JOB_PAIRS])
def test_job_transition_pairs(team, from_, to):
    job = Job.objects.create(team=team, cluster=kube_cluster(team=team), namespace="fraud-staging", name="train",
                             image="trainer:1", command=["train"], status=from_)
    before = AuditEvent.objects.count()
    left = job_transition(job=job, to=to, fields={"message": "moved"})
    row = Job.objects.get(pk=job.pk)
    if to in JOB_ALLOWED[from_]:
        assert left == from_ and (row.status, row.message) == (to, "moved") and job.status == to
        assert AuditEvent.objects.filter(action=f"job.{to}", object_id=str(job.pk)).count() == 1
    else:
        assert left is None and row.status == from_ and row.message == ""
        assert AuditEvent.objects.count() == before
