from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.teams.choices import SERVICE_ACCOUNT_ROLES, Role
from apps.teams.models import ServiceAccount

from ..models import GroupMapping


class GroupMappingSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = GroupMapping
        fields = ["id", "group", "team", "role", "platform_admin", "created_by", "created_at"]


class GroupMappingCreateSerializer(StrictInputSerializer):
    group = serializers.CharField(max_length=255, help_text="A value of the groups claim, compared exactly")
    team = serializers.SlugField(required=False, help_text="Team slug; omit for a platform admin mapping")
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    platform_admin = serializers.BooleanField(default=False)


class ServiceAccountSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    is_active = serializers.BooleanField(source="user.is_active", read_only=True)
    role = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = ServiceAccount
        fields = ["id", "team", "name", "username", "description", "role", "is_active", "created_by", "created_at"]

    def get_role(self, account) -> str | None:
        membership = account.user.memberships.filter(team=account.team).first()
        return membership.role if membership else None


class ServiceAccountCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField(help_text="Team slug")
    name = serializers.CharField(max_length=50, help_text="Lowercase letters, digits and dashes")
    role = serializers.ChoiceField(choices=Role.choices,
                                   help_text=f"One of {', '.join(SERVICE_ACCOUNT_ROLES)}: never a role that approves")
    description = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class ServiceAccountTokenRevokeSerializer(StrictInputSerializer):
    token = serializers.IntegerField(help_text="Id of the service account's token")
