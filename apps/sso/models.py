from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.teams.choices import Role
from apps.teams.models import Team


class GroupMapping(models.Model):
    """An IdP group (or any value of the groups claim) → a role in a team, or platform admin.

    Each SSO login reconciles the user's SSO memberships (and SSO-granted platform admin) with the
    mappings of the groups the provider reports; manual memberships are never touched.
    """

    group = models.CharField(max_length=255, help_text="A value of the groups claim, compared exactly")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    platform_admin = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "team__slug"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(platform_admin=True, team__isnull=True, role="")
                           | Q(platform_admin=False, team__isnull=False) & ~Q(role="")),
                name="group_mapping_team_role_or_platform_admin"),
            models.UniqueConstraint(fields=["group", "team"], name="group_mapping_unique_group_team"),
            models.UniqueConstraint(fields=["group"], condition=Q(platform_admin=True),
                                    name="group_mapping_unique_group_platform_admin"),
        ]

    def __str__(self) -> str:
        return f"{self.group} → {'platform admin' if self.platform_admin else f'{self.team} as {self.role}'}"


class SsoIdentity(models.Model):
    """Links a user to the provider's (issuer, subject): logins match on it, never on a username or an
    e-mail address the provider lets people change."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True, help_text="The groups claim of the last login")
    # Platform admin that the last reconciliation granted; only such a grant is revoked by a later one.
    platform_admin_from_sso = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user__username"]
        verbose_name_plural = "SSO identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_issuer_subject")]

    def __str__(self) -> str:
        return f"{self.user} ← {self.issuer} {self.subject}"
