from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.teams.choices import PlatformRole, Role, TokenScope
from apps.teams.models import ApiToken, Membership, PlatformRoleGrant, Team, WebhookDelivery, WebhookEndpoint


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "slug", "name", "created_at", "archived_at"]


class TeamCreateSerializer(StrictInputSerializer):
    slug = serializers.SlugField(max_length=63)
    name = serializers.CharField(max_length=200)


class MembershipSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "team", "username", "role", "created_at"]


class MembershipCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField(help_text="Team slug")
    username = serializers.CharField(max_length=150)  # auth.User.username
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(StrictInputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class PlatformRoleGrantSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    granted_by = serializers.CharField(source="granted_by.username", read_only=True, default=None)

    class Meta:
        model = PlatformRoleGrant
        fields = ["id", "username", "role", "granted_by", "granted_at"]


class PlatformRoleGrantCreateSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)  # auth.User.username
    role = serializers.ChoiceField(choices=PlatformRole.choices)


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = ApiTokenSerializer.Meta.fields + ["token"]


class ApiTokenCreateSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.READ,
                                    help_text="At most what the user's roles allow; read by default.")
    expires_in_days = serializers.IntegerField(required=False, min_value=1,
                                               help_text="Lifetime; the server's default (90 days) when omitted.")


class TokenExchangeSerializer(ApiTokenCreateSerializer):
    username = serializers.CharField(max_length=150)  # auth.User.username
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(max_length=100, default="command line")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.CharField(source="url_masked", read_only=True,
                                help_text="Scheme and host only; the full URL is stored encrypted and never shown.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "team", "name", "url", "events", "active", "created_at", "secret_rotated_at"]


class WebhookSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="Signing secret, shown once; store it in the receiver now.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = WebhookEndpointSerializer.Meta.fields + ["secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "delivery_key", "attempt", "outcome", "status_code", "latency_ms", "error",
                  "attempted_at"]


class WebhookEndpointCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField(help_text="Team slug")
    name = serializers.CharField(max_length=100)
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)  # auth.User.username
    is_platform_admin = serializers.BooleanField()
    platform_roles = serializers.ListField(child=serializers.CharField(),
                                           help_text="Platform-wide roles (finance); a platform admin holds them all")
    teams = serializers.DictField(child=serializers.CharField(), help_text="team slug → role")
