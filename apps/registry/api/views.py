from django.db.models import F
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.filters import choice_param
from apps.core.api.views import ScopedReadOnlyViewSet, ScopedViewSet
from apps.core.errors import InvalidInput
from apps.core.export import export_format, export_response
from apps.registry import selectors, services
from apps.registry.choices import MlflowPresence, PromotionStatus
from apps.teams.selectors import require_platform_admin, team_get_by_slug

from . import serializers as s

LIST_FILTERS = {
    "model": ["search", "team", "presence"],
    "version": ["search", "team", "model", "model_name", "alias"],
    "promotion": ["status", "environment__name", "version_id", "version__model_id"],
}


# Filters whose values are a closed set (or ids) are checked: an unknown value is a 400 naming the allowed ones.
CHOICE_FILTERS = {"status": PromotionStatus.values, "presence": MlflowPresence.values}
ID_FILTERS = ("model", "version_id", "version__model_id")


def _filters(request, kind: str) -> dict:
    params = {key: request.query_params.get(key) for key in LIST_FILTERS[kind]}
    if kind == "promotion" and request.query_params.get("environment"):
        params["environment__name"] = request.query_params["environment"]
    for key in CHOICE_FILTERS.keys() & params.keys():
        params[key] = choice_param(request, key, CHOICE_FILTERS[key])
    for key in ID_FILTERS:
        if params.get(key) and not params[key].isdigit():
            raise InvalidInput(f"Invalid filter. {key}: '{params[key][:100]}' is not an id (a whole number).",
                               fields={key: ["A whole number."]})
    return {k: v for k, v in params.items() if v}


class RegisteredModelViewSet(ScopedReadOnlyViewSet):
    """Registered models synced from MLflow. ?search=&team=&presence="""

    serializer_class = s.RegisteredModelSerializer
    capabilities = {"list": "view", "retrieve": "view", "assign_team": "administer", "revoke_alias": "approve",
                    "alias_history": "view", "alias_history_export": "view"}

    def select(self, *, user):
        filters = _filters(self.request, "model") if self.action == "list" else {}
        return selectors.model_list(user=user, filters=filters)

    @extend_schema(request=s.AssignTeamSerializer, responses={200: s.RegisteredModelSerializer})
    @action(detail=True, methods=["post"], url_path="assign-team")
    def assign_team(self, request, pk=None):
        data = s.AssignTeamSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data["team"])
        model = services.model_assign_team(actor=request.user, model=self.get_object(), team=team)
        return Response(s.RegisteredModelSerializer(model).data)

    @extend_schema(request=s.RevokeAliasSerializer, responses={201: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"], url_path="revoke-alias")
    def revoke_alias(self, request, pk=None):
        data = s.RevokeAliasSerializer.validated(request.data)
        revoke = services.alias_revoke(actor=request.user, model=self.get_object(), **data)
        return Response(s.PromotionRequestSerializer(revoke).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("alias", str)], responses={200: s.AliasHoldingSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="alias-history")
    def alias_history(self, request, pk=None):
        """Who held which alias when, newest first per alias; paged like every list."""
        rows = selectors.alias_history(user=request.user, model=self.get_object(),
                                       alias=request.query_params.get("alias"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.AliasHoldingSerializer(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"]), OpenApiParameter("alias", str)],
                   responses={(200, "text/csv"): str})
    @action(detail=True, methods=["get"], url_path="alias-history/export")
    def alias_history_export(self, request, pk=None):
        model = self.get_object()
        fmt = export_format(request.query_params.get("format"))
        rows = selectors.alias_history(user=request.user, model=model, alias=request.query_params.get("alias"))
        return export_response(rows, fmt=fmt, columns=s.ALIAS_HISTORY_COLUMNS, to_row=s.alias_holding_row,
                               filename=f"alias-history-{model.name}")


LIST_VALUES = ["id", "model_id", "model_name", "version", "aliases", "metrics", "creator", "git_commit", "mlflow_created_at",
               "presence"]


class ModelVersionViewSet(ScopedReadOnlyViewSet):
    """Model versions with lineage. ?team=&model=&model_name=&search=&alias="""

    capabilities = {"list": "view", "retrieve": "view", "gates": "view", "request_promotion": "operate"}

    def get_serializer_class(self):
        return s.ModelVersionListSerializer if self.action == "list" else s.ModelVersionSerializer

    def select(self, *, user):
        filters = _filters(self.request, "version") if self.action == "list" else {}
        return selectors.model_version_list(user=user, filters=filters)

    def list(self, request):
        # The hot path for CI pipelines and dashboards: rows straight from .values() (no model instances, no
        # heavy lineage columns), shaped exactly as ModelVersionListSerializer documents them.
        rows = self.get_queryset().values(*LIST_VALUES, team_slug=F("team__slug"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([
            {"id": r["id"], "model": r["model_name"], "model_id": r["model_id"], "team": r["team_slug"],
             "version": r["version"], "aliases": r["aliases"], "metrics": r["metrics"], "creator": r["creator"],
             "git_commit": r["git_commit"], "mlflow_created_at": r["mlflow_created_at"], "presence": r["presence"]}
            for r in page])

    @extend_schema(parameters=[OpenApiParameter("environment", str, required=True)])
    @action(detail=True, methods=["get"])
    def gates(self, request, pk=None):
        version = self.get_object()
        name = request.query_params.get("environment", "")
        if not name:
            raise InvalidInput("Say which environment's gates to evaluate: ?environment=production.",
                               fields={"environment": ["required"]})
        env = selectors.environment_get(name=name)
        results = selectors.gate_results(version=version, environment=env)
        return Response({"environment": env.name, "passed": all(r["passed"] for r in results), "results": results})

    @extend_schema(request=s.PromotionCreateSerializer, responses={201: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"], url_path="request-promotion")
    def request_promotion(self, request, pk=None):
        data = s.PromotionCreateSerializer.validated(request.data)
        promotion = services.promotion_request(actor=request.user, version=self.get_object(), **data)
        return Response(s.PromotionRequestSerializer(promotion).data, status=status.HTTP_201_CREATED)


class ApprovalPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.ApprovalPolicySerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "administer", "partial_update": "administer",
                    "destroy": "administer"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def select(self, *, user):
        return selectors.policy_list(user=user)

    @extend_schema(request=s.ApprovalPolicyCreateSerializer, responses={201: s.ApprovalPolicySerializer})
    def create(self, request):
        data = s.ApprovalPolicyCreateSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        data["gates"] = [dict(g) for g in data.get("gates", [])]
        policy = services.policy_create(actor=request.user, team=team, **data)
        return Response(s.ApprovalPolicySerializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ApprovalPolicyUpdateSerializer, responses={200: s.ApprovalPolicySerializer})
    def partial_update(self, request, pk=None):
        data = s.ApprovalPolicyUpdateSerializer.validated(request.data)
        if "gates" in data:
            data["gates"] = [dict(g) for g in data["gates"]]
        policy = services.policy_update(actor=request.user, policy=self.get_object(), **data)
        return Response(s.ApprovalPolicySerializer(policy).data)

    def destroy(self, request, pk=None):
        services.policy_delete(actor=request.user, policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyFloorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The platform's floor per environment: every signed-in user reads it, platform admins set it."""

    serializer_class = s.PolicyFloorSerializer
    capabilities = {"list": "authenticated", "retrieve": "authenticated", "create": "platform_admin",
                    "partial_update": "platform_admin"}
    http_method_names = ["get", "post", "patch", "head", "options"]

    def select(self, *, user):
        return selectors.policy_floor_list(user=user)

    @extend_schema(request=s.PolicyFloorCreateSerializer, responses={201: s.PolicyFloorSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)
        data = s.PolicyFloorCreateSerializer.validated(request.data)
        data["gates"] = [dict(g) for g in data.get("gates", [])]
        floor = services.policy_floor_create(actor=request.user, **data)
        return Response(s.PolicyFloorSerializer(floor).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.PolicyFloorUpdateSerializer, responses={200: s.PolicyFloorSerializer})
    def partial_update(self, request, pk=None):
        require_platform_admin(user=request.user)
        data = s.PolicyFloorUpdateSerializer.validated(request.data)
        if "gates" in data:
            data["gates"] = [dict(g) for g in data["gates"]]
        floor = services.policy_floor_update(actor=request.user, floor=self.get_object(), **data)
        return Response(s.PolicyFloorSerializer(floor).data)


class PromotionRequestViewSet(ScopedReadOnlyViewSet):
    """Promotion requests. ?status=&environment=&version_id=&version__model_id="""

    serializer_class = s.PromotionRequestSerializer
    capabilities = {"list": "view", "retrieve": "view", "inbox": "approve", "approve": "approve",
                    "reject": "approve", "cancel": "operate", "override": "administer",
                    "retry_publish": "administer"}

    def select(self, *, user):
        filters = _filters(self.request, "promotion") if self.action == "list" else {}
        return selectors.promotion_list(user=user, filters=filters)

    @extend_schema(responses={200: s.PromotionRequestSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def inbox(self, request):
        """Requests waiting for the caller's decision."""
        page = self.paginate_queryset(selectors.promotion_inbox(user=request.user))
        return self.get_paginated_response(s.PromotionRequestSerializer(page, many=True).data)

    def _decide(self, request, fn, serializer=s.DecisionSerializer):
        data = serializer.validated(request.data)
        promotion = fn(actor=request.user, request=self.get_object(), **data)
        return Response(s.PromotionRequestSerializer(promotion).data)

    @extend_schema(request=s.DecisionSerializer, responses={200: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, services.promotion_approve)

    @extend_schema(request=s.DecisionSerializer, responses={200: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, services.promotion_reject)

    @extend_schema(request=s.DecisionSerializer, responses={200: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._decide(request, services.promotion_cancel)

    @extend_schema(request=s.OverrideSerializer, responses={200: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"])
    def override(self, request, pk=None):
        return self._decide(request, services.promotion_override, serializer=s.OverrideSerializer)

    @extend_schema(request=None, responses={200: s.PromotionRequestSerializer})
    @action(detail=True, methods=["post"], url_path="retry-publish")
    def retry_publish(self, request, pk=None):
        """A request whose publishing needs attention goes back to publishing (team admins)."""
        promotion = services.promotion_retry_publish(actor=request.user, request=self.get_object())
        return Response(s.PromotionRequestSerializer(promotion).data)


class SyncRunViewSet(ScopedReadOnlyViewSet):
    serializer_class = s.SyncRunSerializer
    capabilities = {"list": "view", "retrieve": "view"}

    def select(self, *, user):
        return selectors.sync_run_list(user=user)


class SyncView(APIView):
    """Sync now: read MLflow's registry in a worker; follow progress at /api/v1/registry/sync-runs/{id}/."""

    capabilities = {"post": "operate"}

    @extend_schema(request=s.SyncRequestSerializer, responses={202: s.SyncRunSerializer})
    def post(self, request):
        data = s.SyncRequestSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data["team"])
        run = services.sync_request(actor=request.user, team=team, full=data["full"])
        return Response(s.SyncRunSerializer(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class MlflowWebhookView(APIView):
    """MLflow's registry webhooks: a signed delivery syncs the one model it names (README → Registry).

    The signature is the credential (apps/registry/webhooks.py): no session or token. MLflow is read before
    anything is written, outside any transaction; a sync that fails answers 503 and MLflow retries.
    """

    capabilities = {"post": "public"}
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: s.MlflowWebhookResultSerializer}, auth=[])
    def post(self, request):
        from apps.registry import webhooks
        from apps.registry.sync import sync_model

        payload = webhooks.delivery_verify(headers=request.headers, body=request.body)
        name = webhooks.delivery_model_name(payload)
        if name is None:
            return Response({"status": "ignored", "model": None})
        claim = webhooks.delivery_claim(headers=request.headers)
        try:
            sync_model(name=name)
        except Exception as exc:
            webhooks.delivery_release(claim)
            raise webhooks.SyncUnavailable(f"Syncing the model failed ({type(exc).__name__}); retry the delivery, "
                                           f"or the scheduled pass picks the change up.") from exc
        return Response({"status": "synced", "model": name})
