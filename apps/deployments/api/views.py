from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.filters import choice_param
from apps.core.api.lifecycle import ArchivableViewSetMixin
from apps.core.api.views import ScopedReadOnlyViewSet, ScopedViewSet
from apps.core.errors import NotFound
from apps.core.lifecycle import require_active
from apps.deployments import review, selectors, services
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Cluster
from apps.deployments.services.siblings import deployment_replicate
from apps.teams.selectors import require_capability, require_platform_admin, team_get_by_slug

from . import serializers as s


def _cluster(name: str) -> Cluster:
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none"
        raise NotFound(f"Cluster '{name}' not found. Known clusters: {known}.", fields={"cluster": ["Unknown cluster."]})
    require_active(cluster, label=f"Cluster '{name}'")  # every caller starts new work on it
    return cluster


def _environment(name: str):
    from apps.registry.models import Environment

    env = Environment.objects.filter(name=name).first()
    if env is None:
        raise NotFound(f"Environment '{name}' not found.", fields={"environment": ["Unknown environment."]})
    return env


def _version(*, user, team, version_id):
    from apps.registry.models import ModelVersion

    version = ModelVersion.objects.select_related("model").filter(pk=version_id, model__team=team).first()
    if version is None:
        raise NotFound(f"Model version {version_id} not found in team {team.slug}.",
                       fields={"model_version": ["Unknown model version."]})
    return version


def _require_first(view, team) -> None:
    """The action's capability in the team, before the body or any object state is looked at: a role learns
    nothing (validation errors, 404s of versions, 409s of states) about what it may not act on."""
    require_capability(user=view.request.user, team=team, capability=view.capabilities[view.action])


def _team_first(view):
    """The team named by a create body, with the capability checked before the rest of the body is read."""
    slug = view.request.data.get("team") if hasattr(view.request.data, "get") else None
    if not isinstance(slug, str) or not slug:
        return None
    team = team_get_by_slug(user=view.request.user, slug=slug)
    _require_first(view, team)
    return team


class ClusterViewSet(ArchivableViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Deployment targets (platform admins). Credentials go in, never out."""

    serializer_class = s.ClusterSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin",
                    "credentials": "platform_admin", "test_connection": "platform_admin", "archive": "platform_admin",
                    "restore": "platform_admin", "destroy": "platform_admin", "gateway": "platform_admin"}

    def select(self, *, user):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no platform admin
            return Cluster.objects.none()
        return selectors.cluster_list(user=user)

    @extend_schema(request=s.ClusterCreateSerializer, responses={201: s.ClusterSerializer})
    def create(self, request):
        data = s.ClusterCreateSerializer.validated(request.data)
        cluster = services.cluster_create(actor=request.user, **{k: v or None if k in ("kubeconfig", "token", "ca_cert")
                                                                 else v for k, v in data.items()})
        return Response(s.ClusterSerializer(cluster).data, status=status.HTTP_201_CREATED)

    lifecycle_guard = staticmethod(require_platform_admin)

    def set_archived(self, *, actor, obj, archived):
        return services.cluster_set_archived(actor=actor, cluster=obj, archived=archived)

    def delete_object(self, *, actor, obj):
        services.cluster_delete(actor=actor, cluster=obj)

    @extend_schema(request=s.ClusterCredentialsSerializer, responses={200: s.ClusterSerializer})
    @action(detail=True, methods=["post"])
    def credentials(self, request, pk=None):
        data = s.ClusterCredentialsSerializer.validated(request.data)
        cluster = services.cluster_set_credentials(actor=request.user, cluster=self.get_object(),
                                                   **{k: (v or None) for k, v in data.items()})
        return Response(s.ClusterSerializer(cluster).data)

    @extend_schema(request=None, responses={200: s.ClusterSerializer})
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        cluster = services.cluster_test_connection(actor=request.user, cluster=self.get_object())
        return Response(s.ClusterSerializer(cluster).data)

    @extend_schema(request=s.ClusterGatewaySerializer, responses={200: s.ClusterSerializer})
    @action(detail=True, methods=["post"])
    def gateway(self, request, pk=None):
        """The Gateway (namespace/name) deployments' HTTPRoutes attach to: exact splits, A/B/n and shadow."""
        data = s.ClusterGatewaySerializer.validated(request.data)
        cluster = services.cluster_set_gateway(actor=request.user, cluster=self.get_object(), gateway=data["gateway"])
        return Response(s.ClusterSerializer(cluster).data)


class NamespaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Which namespace each team deploys into, per cluster and environment."""

    serializer_class = s.NamespaceSerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "platform_admin"}

    def select(self, *, user):
        return selectors.namespace_list(user=user)

    @extend_schema(request=s.NamespaceCreateSerializer, responses={201: s.NamespaceSerializer})
    def create(self, request):
        from apps.teams.selectors import require_platform_admin
        from apps.teams.models import Team

        require_platform_admin(user=request.user)
        data = s.NamespaceCreateSerializer.validated(request.data)
        team = Team.objects.filter(slug=data["team"]).first()
        if team is None:
            raise NotFound(f"Team '{data['team']}' not found.")
        row = services.cluster_namespace_create(actor=request.user, cluster=_cluster(data["cluster"]), team=team,
                                                environment=_environment(data["environment"]),
                                                namespace=data["namespace"])
        return Response(s.NamespaceSerializer(row).data, status=status.HTTP_201_CREATED)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Deployments: create (the whole wizard in one call), deploy a new version, rollout control, rollback.
    ?team=&status=&model="""

    serializer_class = s.DeploymentSerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "operate", "preview": "operate",
                    "deploy": "operate", "promote": "operate", "pause": "operate", "resume": "operate",
                    "abort": "operate", "rollback": "operate", "reapply": "operate", "revisions": "view",
                    "replicate": "operate", "teardown": "operate", "retry": "operate"}

    def select(self, *, user):
        filters = {"team": self.request.query_params.get("team"), "model": self.request.query_params.get("model"),
                   "status": choice_param(self.request, "status", DeploymentStatus.values)} \
            if self.action == "list" else {}
        return selectors.deployment_list(user=user, filters=filters)

    def _inputs(self, data):
        team = team_get_by_slug(user=self.request.user, slug=data["team"])
        return team, dict(model_version=_version(user=self.request.user, team=team, version_id=data["model_version"]),
                          environment=_environment(data["environment"]), cluster=_cluster(data["cluster"]),
                          namespace=data.get("namespace") or None, resources=data.get("resources"),
                          strategy=data.get("strategy"))

    @extend_schema(request=s.DeploymentCreateSerializer, responses={201: s.DeploymentSerializer})
    def create(self, request):
        _team_first(self)
        data = s.DeploymentCreateSerializer.validated(request.data)
        team, kwargs = self._inputs(data)
        deployment = services.deployment_create(actor=request.user, team=team, name=data["name"], **kwargs)
        return Response(s.DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.DeploymentCreateSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """The review step: gate results, admission and monthly cost, rendered manifests, diff vs live."""
        _team_first(self)
        data = s.DeploymentCreateSerializer.validated(request.data)
        team, kwargs = self._inputs(data)
        return Response(review.deployment_preview(actor=request.user, team=team, name=data["name"], **kwargs))

    @extend_schema(request=s.DeploySerializer, responses={201: s.RevisionSerializer})
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        deployment = self.get_object()
        _require_first(self, deployment.team)
        data = s.DeploySerializer.validated(request.data)
        version = _version(user=request.user, team=deployment.team, version_id=data["model_version"])
        revision = services.deployment_deploy(actor=request.user, deployment=deployment, model_version=version,
                                              resources=data.get("resources"), strategy=data.get("strategy"))
        return Response(s.RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)

    def _control(self, fn):
        deployment = fn(actor=self.request.user, deployment=self.get_object())
        return Response(s.DeploymentSerializer(deployment).data)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """Next canary step, or switch blue/green / shadow to the new revision."""
        return self._control(services.deployment_promote)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._control(services.deployment_pause)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._control(services.deployment_resume)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        return self._control(services.deployment_abort)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def teardown(self, request, pk=None):
        """Stop serving for good: the route and every workload are removed from the cluster (in the background),
        GPU reservations released; rows, revisions and audit stay. Terminal: 409 for any new revision after."""
        return self._control(services.deployment_teardown)

    @extend_schema(request=s.RollbackSerializer, responses={201: s.RevisionSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        deployment = self.get_object()
        _require_first(self, deployment.team)
        data = s.RollbackSerializer.validated(request.data)
        revision = services.deployment_rollback(actor=request.user, deployment=deployment, reason=data["reason"],
                                                to_revision=data.get("to_revision"),
                                                break_glass_reason=data["break_glass_reason"])
        return Response(s.RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ReplicateSerializer, responses={201: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def replicate(self, request, pk=None):
        """Deploy the same spec to another cluster: a linked sibling deployment there."""
        deployment = self.get_object()
        _require_first(self, deployment.team)
        data = s.ReplicateSerializer.validated(request.data)
        sibling = deployment_replicate(actor=request.user, deployment=deployment, cluster=_cluster(data["cluster"]),
                                       name=data["name"])
        return Response(s.DeploymentSerializer(sibling).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.RevisionSerializer})
    @action(detail=True, methods=["post"])
    def reapply(self, request, pk=None):
        revision = services.deployment_reapply(actor=request.user, deployment=self.get_object())
        return Response(s.RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """A deployment that needs attention (its drive ran out of attempts) is driven again (audited)."""
        deployment = services.deployment_retry(actor=request.user, deployment=self.get_object())
        return Response(s.DeploymentSerializer(deployment).data)

    @extend_schema(responses={200: s.RevisionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def revisions(self, request, pk=None):
        deployment = self.get_object()
        rows = selectors.revision_list(user=request.user, deployment_id=deployment.pk)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.RevisionSerializer(page, many=True).data)


class RevisionViewSet(ScopedReadOnlyViewSet):
    """Every apply, immutable: manifests, model version, strategy, who and when. ?deployment="""

    serializer_class = s.RevisionSerializer
    capabilities = {"list": "view", "retrieve": "view"}

    def select(self, *, user):
        return selectors.revision_list(user=user, deployment_id=self.request.query_params.get("deployment")
                                       if self.action == "list" else None)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Training and batch work dispatched as Kubernetes Jobs, tracked to completion."""

    serializer_class = s.JobSerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "operate", "retry": "operate"}

    def select(self, *, user):
        return selectors.job_list(user=user)

    @extend_schema(request=s.JobCreateSerializer, responses={201: s.JobSerializer})
    def create(self, request):
        _team_first(self)
        data = s.JobCreateSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        job = services.job_dispatch(actor=request.user, team=team, cluster=_cluster(data.pop("cluster")), **data)
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return Response(s.JobSerializer(services.job_retry(actor=request.user, job=self.get_object())).data)
