import calendar
from datetime import date

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.lifecycle import ArchivableViewSetMixin
from apps.core.api.views import ScopedReadOnlyViewSet, ScopedViewSet
from apps.core.errors import Forbidden, InvalidInput
from apps.core.export import EXPORT_FORMATS, started, stream_rows
from apps.teams.authentication import ApiTokenAuthentication
from apps.teams.choices import PlatformRole
from apps.teams.selectors import require_platform_admin, require_platform_role, team_get_by_slug

from .. import closing, focus, selectors, services
from ..authentication import NodeTokenAuthentication
from ..ingest import batch_decode, samples_ingest
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
    capabilities = {"list": "costs_view", "retrieve": "costs_view", "create": "platform_admin"}

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


class GpuTypeViewSet(ArchivableViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The GPU catalog (platform admins and finance; everyone sees it on the Costs → Quotas page)."""

    serializer_class = s.GpuTypeSerializer
    capabilities = {"list": "finance", "retrieve": "finance", "create": "platform_admin", "archive": "platform_admin",
                    "restore": "platform_admin", "destroy": "platform_admin"}

    def select(self, *, user):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return selectors.gpu_type_list().none()
        require_platform_role(user=user, role=PlatformRole.FINANCE)
        return selectors.gpu_type_list()

    @extend_schema(request=s.GpuTypeCreateSerializer, responses={201: s.GpuTypeSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.GpuTypeCreateSerializer.validated(request.data)
        gpu_type = services.gpu_type_create(actor=request.user, **data)
        return Response(s.GpuTypeSerializer(gpu_type).data, status=status.HTTP_201_CREATED)

    lifecycle_guard = staticmethod(require_platform_admin)

    def set_archived(self, *, actor, obj, archived):
        return services.gpu_type_set_archived(actor=actor, gpu_type=obj, archived=archived)

    def delete_object(self, *, actor, obj):
        services.gpu_type_delete(actor=actor, gpu_type=obj)


class GpuPriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.GpuPriceSerializer
    capabilities = {"list": "finance", "retrieve": "finance", "create": "platform_admin"}

    def select(self, *, user):
        if getattr(self, "swagger_fake_view", False):
            return selectors.gpu_price_list().none()
        require_platform_role(user=user, role=PlatformRole.FINANCE)
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
        # The body is decoded and validated in one pass by msgspec (apps.costs.ingest.BatchIn), not by a DRF
        # serializer: batches hold thousands of samples and this endpoint is the ingest hot path.
        if isinstance(request.auth, NodeToken):
            batch = batch_decode(request.body)
            cluster, node = request.auth.cluster, request.auth.node
            if batch.node and batch.node != node:
                raise Forbidden(f"This token belongs to node '{node}', not '{batch.node}'.")
        else:
            require_platform_admin(user=request.user)
            batch = batch_decode(request.body)
            if not batch.cluster or not batch.node:
                raise InvalidInput("Name the cluster and node the samples come from.",
                                   fields={"cluster": ["required"], "node": ["required"]})
            cluster, node = services.cluster_resolve(batch.cluster), batch.node
        services.node_samples_check(cluster=cluster, node=node,
                                    gpu_indexes={sample.gpu_index for sample in batch.samples})
        result = samples_ingest(cluster=cluster, node=node, batch_id=batch.batch_id, samples=batch.samples)
        return Response(result.as_dict(), status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class NodeTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Registered nodes and their agent tokens: register (token shown once), list, revoke. Platform admins only."""

    serializer_class = s.NodeTokenSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin",
                    "revoke": "platform_admin"}

    def select(self, *, user):
        return selectors.node_token_list(user=user)

    @extend_schema(request=s.NodeTokenCreateSerializer, responses={201: s.NodeTokenCreatedSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.NodeTokenCreateSerializer.validated(request.data)
        token, plaintext = services.node_token_create(actor=request.user, **data)
        return Response({**s.NodeTokenSerializer(token).data, "token": plaintext}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.NodeTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the token: the agent's next post is a 401."""
        token = services.node_token_revoke(actor=request.user, token=self.get_object())
        return Response(s.NodeTokenSerializer(token).data)


def report_period(data: dict) -> tuple[date, date]:
    """[start, end] from ?month=YYYY-MM or ?start=&end=; the current month by default."""
    today = timezone.now().date()
    if data.get("month"):
        year, month = (int(part) for part in data["month"].split("-"))
        first = date(year, month, 1)
        return first, first.replace(day=calendar.monthrange(year, month)[1])
    start = data.get("start") or today.replace(day=1)
    end = data.get("end") or max(today, start)
    if start > end or (end - start).days >= s.MAX_REPORT_DAYS:
        raise InvalidInput(f"The report period {start}..{end} is empty or longer than {s.MAX_REPORT_DAYS} days.",
                           fields={"end": ["invalid period"]})
    return start, end


class CostReportView(APIView):
    """Cost per team/model/version/deployment/GPU type/day from the daily rollups; ?format=csv|jsonl exports."""

    capabilities = {"get": "costs_view"}

    @extend_schema(parameters=[s.ReportQuerySerializer],
                   responses={(200, "application/json"): s.ReportSerializer, (200, "text/csv"): str,
                              (200, "application/x-ndjson"): str})
    def get(self, request):
        data = s.ReportQuerySerializer.validated(request.query_params.dict())
        start, end = report_period(data)
        rows = selectors.cost_report(user=request.user, start=start, end=end, group_by=data["group_by"],
                                     team=data.get("team"), cluster=data.get("cluster"),
                                     share_unallocated=data["share_unallocated"])
        if data["format"] in EXPORT_FORMATS:
            response = StreamingHttpResponse(started(stream_rows(rows, fmt=data["format"],
                                                                 columns=selectors.REPORT_COLUMNS)),
                                             content_type=EXPORT_FORMATS[data["format"]])
            response["Content-Disposition"] = (f'attachment; filename="costs-{data["group_by"].replace(",", "-")}-'
                                               f'{start}-{end}.{data["format"]}"')
            return response
        return Response(s.ReportSerializer({"start": start, "end": end, "group_by": data["group_by"],
                                            "results": rows}).data)


class FocusExportView(APIView):
    """The month's charges as a FinOps FOCUS 1.0 dataset (CSV or Parquet), scoped like the cost report."""

    capabilities = {"get": "costs_view"}

    @extend_schema(parameters=[s.FocusQuerySerializer], responses={(200, "text/csv"): bytes,
                                                                   (200, "application/vnd.apache.parquet"): bytes})
    def get(self, request):
        data = s.FocusQuerySerializer.validated(request.query_params.dict())
        rows = focus.focus_rows(user=request.user, month=data["month"], team=data.get("team"))
        body = focus.focus_csv(rows) if data["format"] == "csv" else focus.focus_parquet(rows)
        response = HttpResponse(body, content_type=focus.FORMATS[data["format"]])
        response["Content-Disposition"] = (f'attachment; filename="focus-{data["month"]:%Y-%m}'
                                           f'{"-" + data["team"] if data.get("team") else ""}.{data["format"]}"')
        return response


class CostMonthListView(APIView):
    """Months from the first with usage to the current one, open or closed. Platform admins and finance."""

    capabilities = {"get": "finance"}

    @extend_schema(responses={200: inline_serializer("CostMonthList", {"results": s.CostMonthSerializer(many=True)})})
    def get(self, request):
        return Response({"results": s.CostMonthSerializer(closing.month_list(user=request.user), many=True).data})


class CostMonthCloseView(APIView):
    """Close a month that has ended: its figures never change again; late data goes to adjustments. 409 twice."""

    capabilities = {"post": "finance"}

    @extend_schema(request=None, responses={200: s.CostMonthSerializer})
    def post(self, request, month: str):
        closed = closing.month_close(actor=request.user, month=closing.month_parse(month))
        entry = next(m for m in closing.month_list(user=request.user) if m["month"] == f"{closed.month:%Y-%m}")
        return Response(s.CostMonthSerializer(entry).data)


class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.BudgetSerializer
    capabilities = {"list": "costs_view", "retrieve": "costs_view", "create": "platform_admin"}

    def select(self, *, user):
        return selectors.budget_list(user=user)

    @extend_schema(request=s.BudgetSetSerializer, responses={201: s.BudgetSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.BudgetSetSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        budget = services.budget_set(actor=request.user, team=team, **data)
        return Response(s.BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)


class BudgetAlertViewSet(ScopedReadOnlyViewSet):
    serializer_class = s.BudgetAlertSerializer
    capabilities = {"list": "costs_view", "retrieve": "costs_view"}

    def select(self, *, user):
        return selectors.budget_alert_list(user=user)


class AllocationViewSet(ScopedReadOnlyViewSet):
    """The GPU allocation ledger (what the control plane dispatched and what the collector found)."""

    serializer_class = s.AllocationSerializer
    capabilities = {"list": "costs_view", "retrieve": "costs_view"}

    def select(self, *, user):
        return selectors.allocation_list(user=user)
