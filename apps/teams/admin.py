from django.contrib import admin

from .models import ApiToken, Membership, Team, WebhookEndpoint


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


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
