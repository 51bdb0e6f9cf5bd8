"""Job dispatch on the runner (kind deployments.job_dispatch): a cluster that never answers leaves the job pending
with its error and a backoff; out of attempts it needs attention (audited, its GPUs released), shown on the
deployments page and the dashboard, until an operator retries it — then the same run is submitted once."""
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.deployments.jobs import JOB_KIND, job_submit
from apps.deployments.models import Job
from apps.deployments.services import job_dispatch
from tests.deployments.factories import kube_cluster
from tests.harness.kube_server import kube_server  # noqa: F401


def test_a_job_the_cluster_never_takes_needs_attention_until_retried(kube_server, engineer, team, staging,  # noqa: F811
                                                                     client_for):
    cluster = kube_cluster(url=kube_server.url, team=team)
    job = job_dispatch(actor=engineer, team=team, cluster=cluster, image="python:3.11", command=["true"])
    good_url = cluster.api_url
    type(cluster).objects.filter(pk=cluster.pk).update(api_url="http://127.0.0.1:9")  # nothing listens there

    assert job_submit(job_id=job.pk) == "retry later"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("pending", 1) and job.last_error and job.next_attempt_at
    Job.objects.filter(pk=job.pk).update(attempts=9, next_attempt_at=timezone.now())
    assert runner.tick(JOB_KIND) == {"needs_attention": 1}
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("needs_attention", 10)
    event = AuditEvent.objects.get(action="job.needs_attention", object_id=str(job.pk))
    assert event.changes["status"] == ["pending", "needs_attention"]

    page = Client()
    page.force_login(engineer)
    assert "retry-job" in page.get("/deployments/").content.decode()
    assert f"{job.name} on {cluster.name}" in page.get("/").content.decode()

    type(cluster).objects.filter(pk=cluster.pk).update(api_url=good_url)
    response = client_for(engineer).post(f"/api/v1/deployments/jobs/{job.pk}/retry/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["attempt"], body["attempts"], body["last_error"]) == ("pending", 1, 0, "")
    assert AuditEvent.objects.get(action="job.retry", object_id=str(job.pk)).actor == engineer
    assert runner.tick(JOB_KIND) == {"done": 1}
    job.refresh_from_db()
    assert job.status == "running" and job.manifest["metadata"]["name"] == job.name  # the same run, once
