"""Jobs on a cluster: dispatch and retry."""

import secrets

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import runner
from apps.core.errors import Conflict, InvalidInput
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import capacity
from ..choices import ClusterKind, JobStatus
from ..jobs import JOB_KIND
from ..models import Cluster, Job
from ..spec import validate_resources
from ..transitions import job_transition
from .clusters import job_namespace

JOB_TOPIC = "deployments.dispatch_job"


@transaction.atomic
def job_dispatch(*, actor, team, cluster: Cluster, image: str, command: list[str], gpu_type: str = "",
                 gpu_count: int = 0, namespace: str | None = None, name: str | None = None,
                 environment: str = "staging") -> Job:
    """Dispatch training or batch work as a Kubernetes Job; tracked to completion by the reconcile beat.

    The job runs in the team's namespace for `environment` on the cluster; an explicit `namespace` must be
    one of the team's namespaces there. Its GPUs are reserved here, in the admitting transaction."""
    if actor is not None:
        require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if cluster.kind != ClusterKind.KUBERNETES:
        raise InvalidInput("Jobs run on Kubernetes clusters; pick one.", fields={"cluster": ["Not a Kubernetes cluster."]})
    if not image or not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise InvalidInput("A job needs an image and a command given as a list of strings.",
                           fields={"command": ["List of strings."]})
    resources = validate_resources({"gpu_type": gpu_type, "gpu_count": gpu_count})
    namespace = job_namespace(cluster=cluster, team=team, environment=environment, namespace=namespace)
    # Random, not just a timestamp: quick concurrent dispatches of one team must not collide on the name.
    name = name or f"{team.slug}-job-{timezone.now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"[:63]
    job = Job.objects.create(team=team, cluster=cluster, namespace=namespace, name=name, image=image, command=command,
                             gpu_type=resources["gpu_type"], gpu_count=resources["gpu_count"],
                             created_by=actor if getattr(actor, "is_authenticated", False) else None)
    capacity.reserve_for_job(job=job)
    audit_record(actor=actor, action="job.dispatch", target=job, team=team,
                 changes={"image": [None, image], "command": [None, command], "namespace": [None, namespace],
                          "gpu": [None, f"{gpu_count}x{gpu_type}"]})
    outbox_enqueue(topic=JOB_TOPIC, payload={"job_id": job.pk}, dedup_key=f"deployments.job:{job.pk}:1", team=team)
    return job


@transaction.atomic
def job_retry(*, actor, job: Job) -> Job:
    """Run a failed job again (a new run, `attempt` + 1), or submit again a job that needs attention (the cluster
    never took it: the same run, under the same name) with a fresh round of dispatch attempts."""
    require_capability(user=actor, team=job.team, capability=Capability.OPERATE)
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.FAILED, JobStatus.NEEDS_ATTENTION):
        raise Conflict(f"Job {job.name} is {job.status}; only failed jobs and jobs that need attention can be "
                       f"retried.")
    attempt = job.attempt + 1 if job.status == JobStatus.FAILED else job.attempt
    job_transition(job=job, to=JobStatus.PENDING, action="job.retry", actor=actor,
                   fields={"attempt": attempt, "message": "", "finished_at": None},
                   changes={"attempt": [job.attempt, attempt], "error": [job.last_error or None, None]})
    runner.retry_now(row=job, fields={"last_error": ""})
    job.refresh_from_db()
    capacity.reserve_for_job(job=job)
    runner.wake(JOB_KIND, ids=[job.pk])
    return job
