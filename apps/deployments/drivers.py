"""The control plane's side of the cluster drivers (workers.drivers), which never see a database row.

`driver_for(cluster)` picks the driver for the cluster's kind and gives it its connection (credentials
are decrypted and checked only when the driver builds an API client), its settings and, for the local
target, the `LocalProcess` rows as its process store. The `ClusterDriver` it returns is called with
rows (deployment, revision, job) and turns them into the drivers' plain data on each call; which
workload a revision runs (a rollback runs an earlier revision's manifests) is the caller's choice.

Traffic is stored and shown by the deployment's revision numbers (r3 serves 100 %, even when r3 is a
rollback running r1's workload); `ClusterDriver.route` and `served_read` translate at this boundary, since
Kubernetes names its objects after the workload (<name>-r1).
"""
import hashlib
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from workers.drivers import (ClusterConnection, DeploymentSpec, Driver, JobSpec, KubeCredentials, KubernetesConfig,
                             LocalConfig, ProcessRecord, RevisionSpec)
from workers.drivers import local as local_driver
from workers.drivers.kubernetes import KubernetesDriver

from .choices import ClusterKind
from .models import Cluster, Deployment, DeploymentRevision, Job, LocalProcess


def connection_for(cluster: Cluster) -> ClusterConnection:
    def credentials() -> KubeCredentials:
        from .services.clusters import cluster_connection

        creds, kubeconfig = cluster_connection(cluster=cluster)  # ApplyFailed when refused
        return KubeCredentials(token=creds.get("token", ""), ca_cert=creds.get("ca_cert", ""), kubeconfig=kubeconfig)

    return ClusterConnection(cluster_id=cluster.pk, name=cluster.name, server=cluster.api_url,
                             credentials_digest=hashlib.sha256(bytes(cluster.credentials_encrypted or b"")).hexdigest(),
                             credentials=credentials, gateway_namespace=cluster.gateway_namespace,
                             gateway_name=cluster.gateway_name)


def workload_numbers(revisions) -> dict[int, int]:
    """{revision number: number of the revision whose workload it runs} (a rollback runs an earlier one's)."""
    revisions = list(revisions)
    by_pk = {r.pk: r for r in revisions}
    return {r.number: by_pk[r.rollback_of_id].number if r.rollback_of_id in by_pk else r.number for r in revisions}


def by_workload(traffic: dict[int, int], shadow: dict, runs: dict[int, int]) -> tuple[dict[int, int], dict]:
    """A split by revision numbers as the workloads serving it (two revisions on one workload add up)."""
    split: dict[int, int] = {}
    for number, weight in traffic.items():
        key = runs.get(int(number), int(number))
        split[key] = split.get(key, 0) + weight
    if shadow:
        shadow = {**shadow, "revision": runs.get(int(shadow["revision"]), int(shadow["revision"]))}
    return split, shadow


def local_config() -> LocalConfig:
    return LocalConfig(base_dir=Path(settings.DEPLOYMENTS_LOCAL_DIR), tracking_uri=settings.MLFLOW_TRACKING_URI,
                       ready_timeout=settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS, run_as=settings.DEPLOYMENTS_LOCAL_RUN_AS,
                       memory_limit_mb=settings.DEPLOYMENTS_LOCAL_MEMORY_LIMIT_MB,
                       cpu_seconds=settings.DEPLOYMENTS_LOCAL_CPU_SECONDS)


def kubernetes_config() -> KubernetesConfig:
    return KubernetesConfig(connect_timeout=settings.DEPLOYMENTS_KUBE_CONNECT_TIMEOUT,
                            read_timeout=settings.DEPLOYMENTS_KUBE_READ_TIMEOUT,
                            server_image=settings.DEPLOYMENTS_SERVER_IMAGE, tracking_uri=settings.MLFLOW_TRACKING_URI)


def deployment_spec(deployment: Deployment) -> DeploymentSpec:
    serving = None
    if deployment.current_revision_id:
        current = deployment.current_revision
        serving = (current.rollback_of or current).number
    warm = None
    if deployment.warm_revision_id and deployment.warm_until and deployment.warm_until > timezone.now():
        warm = (deployment.warm_revision.rollback_of or deployment.warm_revision).number
    return DeploymentSpec(id=deployment.pk, name=deployment.name, namespace=deployment.namespace,
                          team=deployment.team.slug, serving_revision=serving, endpoint_url=deployment.endpoint_url,
                          warm_revision=warm)


def revision_spec(revision: DeploymentRevision, *, deployment: DeploymentSpec) -> RevisionSpec:
    version = revision.model_version
    return RevisionSpec(deployment=deployment, id=revision.pk, number=revision.number, model_name=version.model.name,
                        model_version=str(version.version), artifact_uri=version.artifact_uri or version.source,
                        resources=revision.resources or {}, manifests=revision.manifests or [])


def job_spec(job: Job) -> JobSpec:
    return JobSpec(name=job.name, attempt=job.attempt, namespace=job.namespace, team=job.team.slug, image=job.image,
                   command=list(job.command or []), gpu_type=job.gpu_type or "", gpu_count=job.gpu_count or 0,
                   manifest=job.manifest or {}, status=job.status, message=job.message)


class LocalProcessStore:
    """workers.drivers.spec.ProcessStore on `LocalProcess` rows (unique per deployment, role, revision)."""

    @staticmethod
    def _record(row: LocalProcess) -> ProcessRecord:
        return ProcessRecord(id=row.pk, role=row.role, pid=row.pid, port=row.port, pid_file=row.pid_file,
                             log_file=row.log_file, started_at=row.started_at)

    def get(self, *, deployment_id, role, revision):
        row = LocalProcess.objects.filter(deployment_id=deployment_id, role=role,
                                          revision_id=revision.id if revision else None).first()
        return self._record(row) if row else None

    def claim(self, *, deployment_id, role, revision, host, port, pid_file, log_file):
        try:
            with transaction.atomic():
                row = LocalProcess.objects.create(role=role, deployment_id=deployment_id,
                                                  revision_id=revision.id if revision else None, pid=None, host=host,
                                                  port=port, pid_file=pid_file, log_file=log_file)
        except IntegrityError:
            return None
        return self._record(row)

    def record_pid(self, record, pid):
        LocalProcess.objects.filter(pk=record.id).update(pid=pid)

    def forget(self, record):
        LocalProcess.objects.filter(pk=record.id, pid=record.pid).delete()

    def on_host(self, host):
        return [self._record(row) for row in LocalProcess.objects.filter(host=host)]


def local_adopt() -> dict:
    """Worker start and reconcile beat: adopt this host's live local processes, forget dead ones."""
    return local_driver.local_adopt(store=LocalProcessStore(), base_dir=Path(settings.DEPLOYMENTS_LOCAL_DIR))


class ClusterDriver:
    """A cluster's driver, called with rows; `driver` is the workers.drivers.Driver underneath."""

    def __init__(self, cluster: Cluster, driver: Driver):
        self.cluster = cluster
        self.driver = driver

    def _revisions(self, deployment: Deployment, revisions) -> list[RevisionSpec]:
        revisions = list(revisions)
        prefetch_related_objects(revisions, "model_version__model")
        spec = deployment_spec(deployment)
        return [revision_spec(revision, deployment=spec) for revision in revisions]

    def test_connection(self):
        return self.driver.test_connection()

    def render(self, *, deployment, revision, weight: int) -> list[dict]:
        return self.driver.render(revision=revision_spec(revision, deployment=deployment_spec(deployment)),
                                  weight=weight)

    def apply(self, *, deployment, revision, weight: int, on_request=None) -> None:
        self.driver.apply(revision=revision_spec(revision, deployment=deployment_spec(deployment)), weight=weight,
                          on_request=on_request)

    def wait_ready(self, *, deployment, revision, timeout: float, should_stop=None) -> None:
        self.driver.wait_ready(revision=revision_spec(revision, deployment=deployment_spec(deployment)),
                               timeout=timeout, should_stop=should_stop)

    def route(self, *, deployment, traffic: dict[int, int], shadow: dict, revisions: dict) -> str:
        """`traffic` and `shadow` name revisions by the deployment's numbers. The local router labels each
        backend with the number it is given (its X-Revision header), so it gets those numbers, each with
        the spec of the workload it runs; Kubernetes names objects after workloads, so it gets theirs."""
        # Every revision is prefetched, not just the routed ones: the caller retires the rest next.
        specs = {spec.number: spec for spec in self._revisions(deployment, revisions.values())}
        runs = workload_numbers(revisions.values())
        if self.cluster.kind == ClusterKind.LOCAL:
            return self.driver.route(deployment=deployment_spec(deployment), traffic=traffic, shadow=shadow,
                                     revisions={number: specs[runs[number]] for number in specs})
        traffic, shadow = by_workload(traffic, shadow, runs)
        return self.driver.route(deployment=deployment_spec(deployment), traffic=traffic, shadow=shadow,
                                 revisions=specs)

    def retire(self, *, deployment, revision) -> None:
        self.driver.retire(revision=revision_spec(revision, deployment=deployment_spec(deployment)))

    def teardown(self, *, deployment, revisions: list) -> None:
        self.driver.teardown(deployment=deployment_spec(deployment), revisions=self._revisions(deployment, revisions))

    def observe(self, *, deployment, revisions: list):
        return self.driver.observe(deployment=deployment_spec(deployment),
                                   revisions=self._revisions(deployment, revisions))

    def job_apply(self, *, job: Job) -> dict:
        return self.driver.job_apply(job=job_spec(job))

    def job_status(self, *, job: Job) -> tuple[str, str]:
        return self.driver.job_status(job=job_spec(job))

    def job_logs_url(self, *, job: Job) -> str:
        return self.driver.job_logs_url(job=job_spec(job))

    def client(self):
        """The Kubernetes API client (the cost collector lists pods through it)."""
        return self.driver.client()


def driver_for(cluster: Cluster) -> ClusterDriver:
    connection = connection_for(cluster)
    if cluster.kind == ClusterKind.LOCAL:
        return ClusterDriver(cluster, local_driver.LocalDriver(connection, local_config(), LocalProcessStore()))
    return ClusterDriver(cluster, KubernetesDriver(connection, kubernetes_config()))
