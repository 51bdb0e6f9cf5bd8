from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.views import ScopedViewSet
from apps.core.errors import Forbidden, InvalidInput
from apps.teams.authentication import ApiTokenAuthentication
from apps.teams.selectors import require_platform_admin, team_get_by_slug

from .. import selectors, services
from ..authentication import NodeTokenAuthentication
from ..ingest import samples_ingest
from ..models import NodeToken
from . import serializers as s


class AdmissionView(APIView):
    """May a team run N × GPU type on a cluster now? 200 with the decision, 409 when it does not fit."""

    capabilities = {"post": "view"}

    @extend_schema(request=s.AdmissionRequestSerializer, responses={200: s.AdmissionDecisionSerializer})
    def post(self, request):
        data = s.AdmissionRequestSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        decision = services.admission_require(team=team, **data)
        return Response(s.AdmissionDecisionSerializer(decision).data)


class QuotaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Quotas per team and GPU type; platform admins create or change them (POST is an upsert)."""

    serializer_class = s.QuotaSerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "platform_admin"}

    def select(self, *, user):
        return selectors.quota_list(user=user)

    @extend_schema(request=s.QuotaSetSerializer, responses={201: s.QuotaSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.QuotaSetSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        cluster = services.cluster_resolve(data.pop("cluster"))
        gpu_type = services.gpu_type_resolve(cluster=cluster, name=data.pop("gpu_type"))
        quota = services.quota_set(actor=request.user, team=team, gpu_type=gpu_type, **data)
        return Response(s.QuotaSerializer(quota).data, status=status.HTTP_201_CREATED)


class GpuTypeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The GPU catalog (platform admins; everyone sees it on the Costs → Quotas page)."""

    serializer_class = s.GpuTypeSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin"}

    def select(self, *, user):
        require_platform_admin(user=user)
        return selectors.gpu_type_list()

    @extend_schema(request=s.GpuTypeCreateSerializer, responses={201: s.GpuTypeSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.GpuTypeCreateSerializer.validated(request.data)
        gpu_type = services.gpu_type_create(actor=request.user, **data)
        return Response(s.GpuTypeSerializer(gpu_type).data, status=status.HTTP_201_CREATED)


class GpuPriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.GpuPriceSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin"}

    def select(self, *, user):
        require_platform_admin(user=user)
        return selectors.gpu_price_list()

    @extend_schema(request=s.GpuPriceCreateSerializer, responses={201: s.GpuPriceSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.GpuPriceCreateSerializer.validated(request.data)
        cluster = services.cluster_resolve(data.pop("cluster"))
        gpu_type = services.gpu_type_resolve(cluster=cluster, name=data.pop("gpu_type"))
        price = services.gpu_price_set(actor=request.user, gpu_type=gpu_type, **data)
        return Response(s.GpuPriceSerializer(price).data, status=status.HTTP_201_CREATED)


class SampleIngestView(APIView):
    """NVML agents post sample batches here with their node token (platform admins may too)."""

    authentication_classes = [NodeTokenAuthentication, ApiTokenAuthentication, SessionAuthentication]
    capabilities = {"post": "platform_admin"}

    @extend_schema(request=s.SampleBatchSerializer, responses={201: s.IngestResultSerializer,
                                                               200: s.IngestResultSerializer})
    def post(self, request):
        data = s.SampleBatchSerializer.validated(request.data)
        if isinstance(request.auth, NodeToken):
            cluster, node = request.auth.cluster, request.auth.node
            if data["node"] and data["node"] != node:
                raise Forbidden(f"This token belongs to node '{node}', not '{data['node']}'.")
        else:
            require_platform_admin(user=request.user)
            if not data["cluster"] or not data["node"]:
                raise InvalidInput("Name the cluster and node the samples come from.",
                                   fields={"cluster": ["required"], "node": ["required"]})
            cluster, node = services.cluster_resolve(data["cluster"]), data["node"]
        result = samples_ingest(cluster=cluster, node=node, batch_id=data["batch_id"], samples=data["samples"])
        return Response(result.as_dict(), status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class NodeTokenView(APIView):
    """Create a node token for an NVML agent (shown once)."""

    capabilities = {"post": "platform_admin"}

    @extend_schema(request=s.NodeTokenCreateSerializer)
    def post(self, request):
        require_platform_admin(user=request.user)
        data = s.NodeTokenCreateSerializer.validated(request.data)
        token, plaintext = services.node_token_create(actor=request.user, **data)
        return Response({"id": token.pk, "cluster": token.cluster.name, "node": token.node, "token": plaintext},
                        status=status.HTTP_201_CREATED)
