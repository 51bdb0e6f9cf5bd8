"""GPU quota is a reservation (Kueue-style): admission reserves the GPUs in the transaction that admits the
deployment or job, under the team's quota row lock, so quick concurrent submits never overbook. Reservations
become usage when the work runs and are released on failure, abort, teardown or timeout."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.costs.models import GpuAllocation, GpuReservation
from apps.deployments.models import Deployment, Job
from tests.deployments.factories import environment, gpu_quota, kube_cluster, local_cluster, model_version
from tests.factories import member
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)

# 20 submits of 3 GPUs each ask for 60 = 3 × the 20 free GPUs: exactly 6 fit, 2 GPUs stay free.
FREE, EACH, SUBMITS = 20, 3, 20
GPU = {"cpu": "1", "memory": "1Gi", "gpu_type": "a100-80gb", "gpu_count": EACH, "replicas": 1}


def held(team) -> int:
    """GPUs the team holds: live reservations plus open ledger intervals."""
    reserved = GpuReservation.objects.filter(team=team, status="reserved").aggregate(n=Sum("gpu_count"))["n"] or 0
    used = GpuAllocation.objects.filter(team=team, stopped_at__isnull=True).aggregate(n=Sum("gpu_count"))["n"] or 0
    return reserved + used


def race(*, user, team, url: str, body) -> list[tuple[int, dict, int]]:
    """SUBMITS threads post at once; each returns (status, body, GPUs held right after its commit)."""
    barrier = threading.Barrier(SUBMITS)
    results: list = [None] * SUBMITS

    def submit(i: int) -> None:
        try:
            client = APIClient()
            client.force_authenticate(user=user)
            barrier.wait(timeout=30)
            response = client.post(url, body(i), format="json")
            results[i] = (response.status_code, response.json(), held(team))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(SUBMITS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def assert_exactly_what_fits(results, team) -> None:
    admitted = [r for r in results if r[0] == 201]
    refused = [r for r in results if r[0] != 201]
    assert len(admitted) == FREE // EACH, [r[:2] for r in refused if r[0] != 409]
    for status, body, _ in refused:
        error = body["error"]
        assert status == 409 and error["code"] == "quota_exceeded", body
        assert error["fits"] == FREE % EACH and f"{EACH} more do not fit, {FREE % EACH} would" in error["message"]
    # Checked by a query after each commit: never more held than the quota.
    assert max(r[2] for r in results) <= FREE
    assert held(team) == FREE // EACH * EACH


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_admit_exactly_what_fits(team, private_broker):
    """Deployments, then jobs (one transactional test: each such test pays a database flush)."""
    engineer = member(team, "ml_engineer", "eng")
    environment("staging")
    gpu_quota(cluster=local_cluster(), team=team, guaranteed=FREE, capacity=64)
    version = model_version(team, version=1)
    results = race(user=engineer, team=team, url="/api/v1/deployments/deployments/", body=lambda i: {
        "team": team.slug, "name": f"fraud-{i}", "model_version": version.pk, "environment": "staging",
        "cluster": "local", "resources": GPU})
    assert_exactly_what_fits(results, team)
    assert Deployment.objects.count() == FREE // EACH
    assert GpuReservation.objects.filter(status="reserved").count() == FREE // EACH

    GpuReservation.objects.update(status="released")  # the deployments went away: the quota is free again
    cluster = kube_cluster(team=team)
    gpu_quota(cluster=cluster, team=team, guaranteed=FREE, capacity=64)
    results = race(user=engineer, team=team, url="/api/v1/deployments/jobs/", body=lambda i: {
        "team": team.slug, "cluster": cluster.name, "image": "registry.local/train:1", "command": ["python", "t.py"],
        "gpu_type": "a100-80gb", "gpu_count": EACH})
    assert_exactly_what_fits(results, team)
    assert Job.objects.count() == FREE // EACH


# --- the reservation's life -------------------------------------------------------------------------------

@pytest.fixture
def kube(kube_server, team):  # noqa: F811
    environment("staging")
    cluster = kube_cluster(url=kube_server.url, team=team)
    gpu_quota(cluster=cluster, team=team, guaranteed=4)
    return cluster


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "eng")


def _deploy(engineer, team, cluster, name="fraud"):
    from apps.deployments.services import deployment_create

    return deployment_create(actor=engineer, team=team, name=name, model_version=model_version(team, version=1),
                             environment=environment("staging"), cluster=cluster, resources=GPU)


@pytest.mark.django_db
def test_reservation_becomes_usage_when_the_rollout_serves(kube, engineer, team):
    from apps.deployments.rollout import rollout_drive

    deployment = _deploy(engineer, team, kube)
    reservation = GpuReservation.objects.get(deployment_id=deployment.pk)
    assert reservation.status == "reserved" and reservation.expires_at is not None and held(team) == EACH
    rollout_drive(deployment_id=deployment.pk)
    reservation.refresh_from_db()
    allocation = GpuAllocation.objects.get(deployment_id=deployment.pk, stopped_at__isnull=True)
    assert reservation.status == "consumed" and reservation.close_reason == f"allocation {allocation.pk}"
    assert held(team) == EACH  # counted once: as usage now, not also as a reservation


@pytest.mark.django_db
def test_failed_rollout_releases_its_reservation(kube, kube_server, engineer, team):  # noqa: F811
    from apps.deployments.rollout import rollout_drive

    kube_server.kmock.outcome = "failed"
    deployment = _deploy(engineer, team, kube)
    rollout_drive(deployment_id=deployment.pk)
    reservation = GpuReservation.objects.get(deployment_id=deployment.pk)
    assert reservation.status == "released" and "failed" in reservation.close_reason
    assert held(team) == 0


@pytest.mark.django_db
def test_aborted_rollout_releases_its_reservation(kube, engineer, team):
    from apps.deployments.services import deployment_abort

    deployment = _deploy(engineer, team, kube)
    deployment_abort(actor=engineer, deployment=deployment)
    assert GpuReservation.objects.get(deployment_id=deployment.pk).status == "released" and held(team) == 0


@pytest.mark.django_db
def test_job_reservation_runs_then_frees_on_failure(kube, kube_server, engineer, team):  # noqa: F811
    import time

    from apps.deployments.jobs import job_poll, job_submit
    from apps.deployments.services import job_dispatch

    kube_server.kmock.outcome = "failed"
    job = job_dispatch(actor=engineer, team=team, cluster=kube, image="python:3.11", command=["false"],
                       gpu_type="a100-80gb", gpu_count=EACH)
    assert held(team) == EACH
    assert job_submit(job_id=job.pk) == "running"
    assert GpuReservation.objects.get(job_id=job.pk).status == "consumed"
    assert GpuAllocation.objects.get(job_id=job.pk, stopped_at__isnull=True).gpu_count == EACH
    time.sleep(0.5)
    assert job_poll(job=Job.objects.get(pk=job.pk)) == "failed"
    assert held(team) == 0


@pytest.mark.django_db
def test_reservation_of_work_that_never_started_times_out(kube, engineer, team):
    first = _deploy(engineer, team, kube, name="stuck")
    GpuReservation.objects.filter(deployment_id=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Not counted any more, and released (audited) by the next admission of the team.
    second = _deploy(engineer, team, kube, name="next")
    expired = GpuReservation.objects.get(deployment_id=first.pk)
    assert expired.status == "released" and expired.close_reason.startswith("timed out")
    assert AuditEvent.objects.filter(action="costs.reservation.expire", object_id=str(expired.pk)).exists()
    assert GpuReservation.objects.get(deployment_id=second.pk).status == "reserved" and held(team) == EACH


@pytest.mark.django_db
def test_missing_quota_row_refuses_with_what_to_configure(engineer, team, platform_admin):
    from apps.core.errors import Conflict
    from apps.costs.services import gpu_type_create

    environment("staging")
    gpu_type_create(actor=platform_admin, cluster=local_cluster(), name="a100-80gb", capacity=8)
    with pytest.raises(Conflict, match="has no quota for a100-80gb on cluster 'local'. Ask a platform admin to set one"):
        _deploy(engineer, team, local_cluster())
    assert not Deployment.objects.exists() and not GpuReservation.objects.exists()


@pytest.mark.django_db
def test_borrowed_gpus_are_reserved_against_the_cohort_too(team, other_team):
    from apps.costs.errors import AdmissionRefused
    from apps.costs.services import admission_check, admission_reserve
    from tests.costs import factories as cf

    gtype = cf.gpu_type(capacity=100)
    cf.quota(team, gtype, guaranteed=2, borrow_limit=4, cohort="research")
    cf.quota(other_team, gtype, guaranteed=4, cohort="research")
    reservation = admission_reserve(team=team, cluster="local", gpu_type=gtype.name, gpu_count=4, job_id=1)
    assert reservation.borrowed == 2
    # The reserved borrow counts against the cohort's free GPUs at once, before anything runs.
    assert admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=1).in_use == 4
    with pytest.raises(AdmissionRefused, match="3 more do not fit, 2 would"):
        admission_reserve(team=team, cluster="local", gpu_type=gtype.name, gpu_count=3, job_id=2)
