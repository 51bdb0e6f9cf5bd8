"""Clusters (platform admins): registration, encrypted credentials, connection tests, team namespaces."""

import json
import re

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.core.lifecycle import delete_unreferenced, set_archived
from apps.teams.selectors import require_platform_admin

from .. import crypto
from ..choices import ClusterKind
from ..cluster_access import cluster_access_check
from ..models import Cluster, ClusterNamespace


def _credentials_blob(*, kubeconfig: str | None, token: str | None, ca_cert: str | None, api_url: str) -> tuple[bytes, str]:
    if kubeconfig:
        import yaml

        try:
            parsed = yaml.safe_load(kubeconfig)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"The kubeconfig is not valid YAML: {exc}", fields={"kubeconfig": ["Invalid YAML."]})
        if not isinstance(parsed, dict) or not parsed.get("clusters"):
            raise InvalidInput("The kubeconfig has no clusters section.", fields={"kubeconfig": ["No clusters."]})
        cluster_access_check(api_url=api_url, kubeconfig=parsed)
        return crypto.encrypt(json.dumps({"kubeconfig": kubeconfig})), "kubeconfig"
    if token:
        if not api_url:
            raise InvalidInput("A service-account token needs the API URL.", fields={"api_url": ["Required with a token."]})
        cluster_access_check(api_url=api_url, kubeconfig=None)
        return crypto.encrypt(json.dumps({"token": token, "ca_cert": ca_cert or ""})), "token"
    raise InvalidInput("A Kubernetes cluster needs credentials: a kubeconfig, or a token with the API URL (and CA).",
                       fields={"kubeconfig": ["Give a kubeconfig or a token."]})


@transaction.atomic
def cluster_create(*, actor, name: str, kind: str, description: str = "", api_url: str = "",
                   kubeconfig: str | None = None, token: str | None = None, ca_cert: str | None = None) -> Cluster:
    require_platform_admin(user=actor)
    if Cluster.objects.filter(name=name).exists():
        raise Conflict(f"A cluster named '{name}' already exists.", fields={"name": ["Already taken."]})
    cluster = Cluster(name=name, kind=kind, description=description, api_url=api_url)
    if kind == ClusterKind.KUBERNETES:
        cluster.credentials_encrypted, cluster.credentials_kind = _credentials_blob(
            kubeconfig=kubeconfig, token=token, ca_cert=ca_cert, api_url=api_url)
    cluster.save()
    audit_record(actor=actor, action="cluster.create", target=cluster,
                 changes={"name": [None, name], "kind": [None, kind], "api_url": [None, api_url],
                          "credentials": [None, "set" if cluster.credentials_kind else ""]})
    return cluster


@transaction.atomic
def cluster_set_archived(*, actor, cluster: Cluster, archived: bool) -> Cluster:
    """Archive (no new deployments, jobs or namespaces; running ones and history stay) or restore a cluster."""
    require_platform_admin(user=actor)
    return set_archived(cluster, actor=actor, archived=archived, label=f"Cluster '{cluster.name}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"cluster.{op}", target=cluster,
                                                               changes=changes))


@transaction.atomic
def cluster_delete(*, actor, cluster: Cluster) -> None:
    """Delete a cluster nothing refers to (no namespaces, deployments, jobs, GPU types...); otherwise 409."""
    require_platform_admin(user=actor)
    delete_unreferenced(cluster, label=f"Cluster '{cluster.name}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"cluster.{op}", target=cluster,
                                                               changes=changes))


@transaction.atomic
def cluster_set_credentials(*, actor, cluster: Cluster, api_url: str | None = None, kubeconfig: str | None = None,
                            token: str | None = None, ca_cert: str | None = None) -> Cluster:
    require_platform_admin(user=actor)
    if cluster.kind != ClusterKind.KUBERNETES:
        raise InvalidInput("Only Kubernetes clusters take credentials.")
    if api_url is not None:
        cluster.api_url = api_url
    cluster.credentials_encrypted, cluster.credentials_kind = _credentials_blob(
        kubeconfig=kubeconfig, token=token, ca_cert=ca_cert, api_url=cluster.api_url)
    cluster.last_check_ok = None
    cluster.save()
    audit_record(actor=actor, action="cluster.credentials_set", target=cluster,
                 changes={"credentials": ["***", "***"], "credentials_kind": [None, cluster.credentials_kind]})
    return cluster


def cluster_credentials(*, cluster: Cluster) -> dict:
    """Decrypted credentials, for drivers only (never serialized, logged or audited)."""
    if not cluster.credentials_encrypted:
        return {}
    return json.loads(crypto.decrypt(cluster.credentials_encrypted))


def cluster_connection(*, cluster: Cluster) -> tuple[dict, dict | None]:
    """(credentials, parsed kubeconfig or None) for a driver about to build a client, after the same checks as
    at save time (SSRF guard on every server URL, kubeconfig exec/auth-provider refused): loading a kubeconfig
    runs its exec plugin, so nothing is loaded before this passes. A refusal is ApplyFailed for the driver."""
    import yaml

    from workers.drivers.base import ApplyFailed

    creds = cluster_credentials(cluster=cluster)
    kubeconfig = yaml.safe_load(creds["kubeconfig"]) if "kubeconfig" in creds else None
    try:
        cluster_access_check(api_url=cluster.api_url, kubeconfig=kubeconfig)
    except InvalidInput as exc:
        raise ApplyFailed(f"Refused to connect to cluster {cluster.name}: {exc.message}") from exc
    return creds, kubeconfig


def credentials_rotate() -> int:
    """Re-encrypt every cluster's credentials with the first configured key (after prepending a new one)."""
    count = 0
    for cluster in Cluster.objects.exclude(credentials_encrypted=None):
        Cluster.objects.filter(pk=cluster.pk).update(credentials_encrypted=crypto.rotate(cluster.credentials_encrypted))
        count += 1
    return count


def cluster_test_connection(*, actor, cluster: Cluster) -> Cluster:
    require_platform_admin(user=actor)
    from ..drivers import driver_for

    try:
        check = driver_for(cluster).test_connection()
        ok, message, kserve, gateway_api = check.ok, check.message, check.kserve, check.gateway_api
    except Exception as exc:  # the check reports any failure to the admin rather than erroring
        ok, message, kserve, gateway_api = False, f"{type(exc).__name__}: {exc}", None, None
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(last_checked_at=timezone.now(), last_check_ok=ok,
                                                     last_check_message=message[:1000], kserve_available=kserve,
                                                     gateway_api_available=gateway_api)
        cluster.refresh_from_db()
        audit_record(actor=actor, action="cluster.test_connection", target=cluster,
                     changes={"ok": [None, ok], "message": [None, message[:300]]})
    return cluster


GATEWAY_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")


@transaction.atomic
def cluster_set_gateway(*, actor, cluster: Cluster, gateway: str) -> Cluster:
    """Name the Gateway ("namespace/name") that deployments' HTTPRoutes on this cluster attach to, or unset
    it (""): with it, a cluster that serves the Gateway API splits traffic exactly (canary, A/B/n, shadow)."""
    require_platform_admin(user=actor)
    gateway = (gateway or "").strip()
    if gateway and not GATEWAY_RE.match(gateway):
        raise InvalidInput("The Gateway is namespace/name, e.g. gateways/public (lowercase DNS names).",
                           fields={"gateway": ["Use namespace/name."]})
    if gateway and cluster.kind != ClusterKind.KUBERNETES:
        raise InvalidInput(f"Cluster {cluster.name} is not a Kubernetes cluster; its router splits traffic itself.",
                           fields={"gateway": ["Only for Kubernetes clusters."]})
    namespace, name = gateway.split("/", 1) if gateway else ("", "")
    before = f"{cluster.gateway_namespace}/{cluster.gateway_name}" if cluster.gateway_name else ""
    Cluster.objects.filter(pk=cluster.pk).update(gateway_namespace=namespace, gateway_name=name)
    cluster.refresh_from_db()
    audit_record(actor=actor, action="cluster.gateway_set", target=cluster, changes={"gateway": [before, gateway]})
    return cluster


@transaction.atomic
def cluster_namespace_create(*, actor, cluster: Cluster, team, environment, namespace: str) -> ClusterNamespace:
    require_platform_admin(user=actor)
    if ClusterNamespace.objects.filter(cluster=cluster, team=team, environment=environment).exists():
        raise Conflict(f"Team {team.slug} already has a namespace for {environment.name} on {cluster.name}.")
    if ClusterNamespace.objects.filter(cluster=cluster, namespace=namespace).exists():
        raise Conflict(f"Namespace {namespace} on {cluster.name} is already assigned.", fields={"namespace": ["Taken."]})
    row = ClusterNamespace.objects.create(cluster=cluster, team=team, environment=environment, namespace=namespace)
    audit_record(actor=actor, action="cluster.namespace_create", target=row, team=team,
                 changes={"cluster": [None, cluster.name], "environment": [None, environment.name],
                          "namespace": [None, namespace]})
    return row


def namespace_for(*, cluster: Cluster, team, environment) -> str:
    row = ClusterNamespace.objects.filter(cluster=cluster, team=team, environment=environment).first()
    if row is not None:
        return row.namespace
    if cluster.kind == ClusterKind.LOCAL:
        return f"{team.slug}-{environment.name}"[:63]
    raise InvalidInput(f"Team {team.slug} has no namespace for {environment.name} on cluster {cluster.name}; a "
                       f"platform admin adds one under Deployments → Clusters.", fields={"cluster": ["No namespace."]})


def job_namespace(*, cluster: Cluster, team, environment: str | None, namespace: str | None) -> str:
    """Where a team's job may run: its namespace for the environment on the cluster. A namespace given
    explicitly (the API, a monitor's retrain_job) is accepted only if it is one of the team's namespaces on
    that cluster, never kube-system or another team's: the job runs with the control plane's credentials."""
    from apps.registry.models import Environment

    if namespace:
        allowed = sorted(ClusterNamespace.objects.filter(cluster=cluster, team=team).values_list("namespace", flat=True))
        if namespace not in allowed:
            where = (f"its namespaces there are {', '.join(allowed)}" if allowed else
                     "it has none there yet (a platform admin assigns them under Deployments → Clusters)")
            raise InvalidInput(f"Team {team.slug} may run jobs on {cluster.name} only in its own namespaces, not "
                               f"{namespace}; {where}.", fields={"namespace": [f"Allowed: {', '.join(allowed) or 'none'}."]},
                               extra={"allowed_namespaces": allowed})
        return namespace
    env = Environment.objects.filter(name=environment or "").first()
    if env is None:
        raise InvalidInput(f"Unknown environment {environment}.", fields={"environment": ["Unknown environment."]})
    return namespace_for(cluster=cluster, team=team, environment=env)
