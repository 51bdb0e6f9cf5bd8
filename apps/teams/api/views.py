from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.lifecycle import ArchivableViewSetMixin
from apps.core.api.views import ScopedReadOnlyViewSet, ScopedViewSet
from apps.teams import selectors, services
from apps.teams.selectors import require_platform_admin
from apps.teams.filtersets import MembershipFilterSet, WebhookEndpointFilterSet

from . import serializers as s


class TeamViewSet(ArchivableViewSetMixin, mixins.CreateModelMixin, ScopedReadOnlyViewSet):
    serializer_class = s.TeamSerializer
    capabilities = {"list": "view", "retrieve": "view", "create": "platform_admin", "archive": "platform_admin",
                    "restore": "platform_admin", "destroy": "platform_admin"}
    lookup_field = "slug"

    def select(self, *, user):
        return selectors.team_list(user=user)

    @extend_schema(request=s.TeamCreateSerializer, responses={201: s.TeamSerializer})
    def create(self, request):
        data = s.TeamCreateSerializer.validated(request.data)
        team = services.team_create(actor=request.user, **data)
        return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    lifecycle_guard = staticmethod(require_platform_admin)

    def set_archived(self, *, actor, obj, archived):
        return services.team_set_archived(actor=actor, team=obj, archived=archived)

    def delete_object(self, *, actor, obj):
        services.team_delete(actor=actor, team=obj)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.MembershipSerializer
    filterset_class = MembershipFilterSet
    capabilities = {"list": "view", "retrieve": "view", "create": "administer", "partial_update": "administer",
                    "destroy": "administer"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def select(self, *, user):
        return selectors.membership_list(user=user)

    @extend_schema(request=s.MembershipCreateSerializer, responses={201: s.MembershipSerializer})
    def create(self, request):
        data = s.MembershipCreateSerializer.validated(request.data)
        team = selectors.team_get_by_slug(user=request.user, slug=data["team"])
        membership = services.membership_add(actor=request.user, team=team, username=data["username"],
                                             role=data["role"])
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MembershipUpdateSerializer, responses={200: s.MembershipSerializer})
    def partial_update(self, request, pk=None):
        data = s.MembershipUpdateSerializer.validated(request.data)
        membership = services.membership_change_role(actor=request.user, membership=self.get_object(), **data)
        return Response(s.MembershipSerializer(membership).data)

    def destroy(self, request, pk=None):
        services.membership_remove(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlatformRoleGrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Platform-wide roles (finance) held by users: platform admins grant and revoke them, audited."""

    serializer_class = s.PlatformRoleGrantSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin",
                    "destroy": "platform_admin"}
    http_method_names = ["get", "post", "delete", "head", "options"]

    def select(self, *, user):
        return selectors.platform_role_grant_list(user=user)

    @extend_schema(request=s.PlatformRoleGrantCreateSerializer, responses={201: s.PlatformRoleGrantSerializer})
    def create(self, request):
        data = s.PlatformRoleGrantCreateSerializer.validated(request.data)
        grant = services.platform_role_grant(actor=request.user, **data)
        return Response(s.PlatformRoleGrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.platform_role_revoke(actor=request.user, grant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.ApiTokenSerializer
    capabilities = {"list": "self", "retrieve": "self", "create": "self", "revoke": "self"}

    def select(self, *, user):
        return selectors.api_token_list(user=user)

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request):
        data = s.ApiTokenCreateSerializer.validated(request.data)
        token, plaintext = services.api_token_create(actor=request.user, **data)
        body = s.ApiTokenSerializer(token).data | {"token": plaintext}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.ApiTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = services.api_token_revoke(actor=request.user, token=self.get_object())
        return Response(s.ApiTokenSerializer(token).data)


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.WebhookEndpointSerializer
    filterset_class = WebhookEndpointFilterSet
    capabilities = {"list": "administer", "retrieve": "administer", "create": "administer",
                    "destroy": "administer", "rotate_secret": "administer", "deliveries": "administer",
                    "retry_notifications": "administer"}
    http_method_names = ["get", "post", "delete", "head", "options"]

    def select(self, *, user):
        return selectors.webhook_list(user=user)

    @extend_schema(request=s.WebhookEndpointCreateSerializer, responses={201: s.WebhookSecretSerializer})
    def create(self, request):
        data = s.WebhookEndpointCreateSerializer.validated(request.data)
        team = selectors.team_get_by_slug(user=request.user, slug=data.pop("team"))
        endpoint, secret = services.webhook_create(actor=request.user, team=team, **data)
        body = s.WebhookEndpointSerializer(endpoint).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.webhook_delete(actor=request.user, endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: s.WebhookSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint, secret = services.webhook_rotate_secret(actor=request.user, endpoint=self.get_object())
        return Response(s.WebhookEndpointSerializer(endpoint).data | {"secret": secret})

    @extend_schema(responses={200: s.WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The delivery log: one row per attempt (outcome, HTTP status, latency, error), newest first."""
        page = self.paginate_queryset(selectors.webhook_delivery_list(user=request.user, endpoint=self.get_object()))
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="retry-notifications")
    def retry_notifications(self, request, pk=None):
        """Send again every notification of this endpoint that needs attention (its attempts ran out; audited)."""
        from apps.teams.notifications import notifications_retry

        return Response({"retried": notifications_retry(actor=request.user, endpoint=self.get_object())})


class TokenExchangeView(APIView):
    """Username and password → an API token (shown once), for command-line clients.

    Takes no session or token: the password is the credential. Wrong passwords count towards the same
    (username, address) lockout as the login form; a locked pair gets 429 even with the right password.
    """

    capabilities = {"post": "public"}
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.TokenExchangeSerializer, responses={201: s.ApiTokenCreatedSerializer}, auth=[])
    def post(self, request):
        data = s.TokenExchangeSerializer.validated(request.data)
        token, plaintext = services.api_token_exchange(request=request._request, **data)
        body = s.ApiTokenSerializer(token).data | {"token": plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class MeView(APIView):
    capabilities = {"get": "self"}

    @extend_schema(responses={200: s.MeSerializer})
    def get(self, request):
        teams = {m.team.slug: m.role for m in selectors.membership_list(user=request.user).filter(user=request.user)}
        return Response({"username": request.user.username, "is_platform_admin": request.user.is_superuser,
                         "platform_roles": sorted(selectors.platform_roles_for(user=request.user)), "teams": teams})
