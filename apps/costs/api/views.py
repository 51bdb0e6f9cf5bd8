from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.views import ScopedViewSet
from apps.teams.selectors import require_platform_admin, team_get_by_slug

from .. import selectors, services
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
