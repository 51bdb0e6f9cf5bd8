from django.contrib import admin

from . import services
from .models import ApiToken, Membership, PlatformRoleGrant, Team, WebhookEndpoint


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(PlatformRoleGrant)
class PlatformRoleGrantAdmin(admin.ModelAdmin):
    """Grant and revoke through the services, so the admin's changes are audited like the API's."""

    list_display = ["user", "role", "granted_by", "granted_at"]
    fields = ["user", "role"]

    def has_change_permission(self, request, obj=None):
        return False  # a grant is added or revoked, never edited

    def save_model(self, request, obj, form, change):
        obj.pk = services.platform_role_grant(actor=request.user, username=obj.user.username, role=obj.role).pk

    def delete_model(self, request, obj):
        services.platform_role_revoke(actor=request.user, grant=obj)

    def delete_queryset(self, request, queryset):
        for grant in queryset.select_related("user"):
            services.platform_role_revoke(actor=request.user, grant=grant)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at"]
    # Scope and expiry too: widening either here would bypass the role ceiling and the audit log.
    readonly_fields = ["user", "name", "prefix", "secret_hash", "scope", "created_at", "expires_at", "last_used_at",
                       "revoked_at"]

    def has_add_permission(self, request):
        return False  # created through the UI/API so the plaintext is shown once and the creation audited


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["team", "name", "url_masked", "active", "created_at"]
    fields = ["team", "name", "url_masked", "events", "active", "created_at", "secret_rotated_at"]
    readonly_fields = ["team", "url_masked", "created_at", "secret_rotated_at"]

    def has_add_permission(self, request):
        return False  # created through the UI/API: the URL is checked by the SSRF guard and the secret shown once
