from django.contrib import admin

from .models import GroupMapping, SsoIdentity


@admin.register(GroupMapping)
class GroupMappingAdmin(admin.ModelAdmin):
    """Read-only here: mappings change through the mapping page or the API, so each change is audited and applied."""

    list_display = ["group", "team", "role", "platform_admin", "created_by", "created_at"]
    search_fields = ["group"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "issuer", "subject", "last_login_at", "platform_admin_from_sso"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["user", "issuer", "subject", "groups", "platform_admin_from_sso", "created_at", "last_login_at"]

    def has_add_permission(self, request):
        return False  # created by the first SSO login
