from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.views import ScopedViewSet
from apps.teams.api.serializers import ApiTokenCreatedSerializer, ApiTokenCreateSerializer, ApiTokenSerializer
from apps.teams.selectors import require_platform_admin, team_get_by_slug

from .. import selectors, services
from . import serializers as s


class GroupMappingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """IdP group → role in a team, or platform admin: reconciled at every SSO login. Platform admins only."""

    serializer_class = s.GroupMappingSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin",
                    "destroy": "platform_admin"}
    http_method_names = ["get", "post", "delete", "head", "options"]

    def select(self, *, user):
        return selectors.group_mapping_list(user=user)

    @extend_schema(request=s.GroupMappingCreateSerializer, responses={201: s.GroupMappingSerializer})
    def create(self, request):
        require_platform_admin(user=request.user)  # before the team lookup: permission first, then state
        data = s.GroupMappingCreateSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data["team"]) if data.get("team") else None
        mapping = services.group_mapping_create(actor=request.user, group=data["group"], team=team,
                                                role=data.get("role", ""), platform_admin=data["platform_admin"])
        return Response(s.GroupMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.group_mapping_delete(actor=request.user, mapping=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Non-human principals of a team, for CI pipelines: team admins create them and issue their tokens."""

    serializer_class = s.ServiceAccountSerializer
    capabilities = {"list": "administer", "retrieve": "administer", "create": "administer",
                    "deactivate": "administer", "tokens": "administer", "revoke_token": "administer"}
    http_method_names = ["get", "post", "head", "options"]

    def select(self, *, user):
        return selectors.service_account_list(user=user)

    @extend_schema(request=s.ServiceAccountCreateSerializer, responses={201: s.ServiceAccountSerializer})
    def create(self, request):
        data = s.ServiceAccountCreateSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        account = services.service_account_create(actor=request.user, team=team, **data)
        return Response(s.ServiceAccountSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.ServiceAccountSerializer})
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        account = services.service_account_deactivate(actor=request.user, account=self.get_object())
        return Response(s.ServiceAccountSerializer(account).data)

    @extend_schema(methods=["get"], responses={200: ApiTokenSerializer(many=True)})
    @extend_schema(methods=["post"], request=ApiTokenCreateSerializer,
                   responses={201: ApiTokenCreatedSerializer})
    @action(detail=True, methods=["get", "post"])
    def tokens(self, request, pk=None):
        """GET: the account's tokens (never their secrets). POST: a new token, its plaintext shown once."""
        account = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.service_account_token_list(account=account))
            return self.get_paginated_response(ApiTokenSerializer(page, many=True).data)
        data = ApiTokenCreateSerializer.validated(request.data)
        token, plaintext = services.service_account_token_create(actor=request.user, account=account, **data)
        return Response(ApiTokenSerializer(token).data | {"token": plaintext}, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ServiceAccountTokenRevokeSerializer, responses={200: ApiTokenSerializer})
    @action(detail=True, methods=["post"], url_path="revoke-token")
    def revoke_token(self, request, pk=None):
        data = s.ServiceAccountTokenRevokeSerializer.validated(request.data)
        token = services.service_account_token_revoke(actor=request.user, account=self.get_object(),
                                                      token_id=data["token"])
        return Response(ApiTokenSerializer(token).data)
