from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core import crypto
from apps.core.lifecycle import Archivable
from apps.core.masking import mask_url
from apps.core.runner import LeasedWork

from .choices import DeliveryOutcome, MembershipSource, NotificationStatus, PlatformRole, Role, TokenScope


class Team(Archivable):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    # SSO memberships are added, changed and removed only by the login's reconciliation (apps.sso); the
    # reconciliation never touches a manual one.
    source = models.CharField(max_length=10, choices=MembershipSource.choices, default=MembershipSource.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class PlatformRoleGrant(models.Model):
    """A platform-wide role held by a user (see PlatformRole); granted and revoked by platform admins, audited."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="platform_role_grants")
    role = models.CharField(max_length=20, choices=PlatformRole.choices)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="platform_role_grant_unique_user_role")]

    def __str__(self) -> str:
        return f"{self.user} as {self.role}"


class ServiceAccount(models.Model):
    """A non-human principal owned by a team (a CI pipeline), created by a team admin.

    Its user has no password and no SSO identity: it acts only through the API tokens its team's admins
    issue, with its membership's role (SERVICE_ACCOUNT_ROLES) in its team and nowhere else. It never
    approves a promotion; the audit log names it as a service account.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="service_accounts")
    name = models.SlugField(max_length=50)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="service_account_unique_team_name")]

    def __str__(self) -> str:
        return f"{self.team}/{self.name}"


class ApiToken(models.Model):
    """A per-user API token. Only a SHA-256 of the secret is stored; the plaintext is shown once.

    It acts as its user with no more than its scope allows (see SCOPE_CAPABILITIES) until it expires.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=10, choices=TokenScope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class WebhookEndpoint(models.Model):
    """Where a team's notifications go (Slack-compatible incoming webhook or any JSON receiver).

    The URL (Slack's embeds a secret) and the signing secret are Fernet-encrypted; only `url_masked`
    (scheme and host) is ever shown. Set them through the `url` / `signing_secret` properties.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    url_encrypted = models.BinaryField()
    url_masked = models.CharField(max_length=300)
    secret_encrypted = models.BinaryField()
    events = models.JSONField(default=list, blank=True, help_text="Event names or prefixes ('registry.'); empty = all")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["team__slug", "name"]

    @property
    def url(self) -> str:
        return crypto.decrypt(self.url_encrypted)

    @url.setter
    def url(self, value: str) -> None:
        self.url_encrypted, self.url_masked = crypto.encrypt(value), mask_url(value)

    @property
    def signing_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @signing_secret.setter
    def signing_secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value)

    def wants(self, event: str) -> bool:
        return not self.events or any(event == e or (e.endswith(".") and event.startswith(e)) for e in self.events)

    def __str__(self) -> str:
        return f"{self.team}: {self.name}"


class WebhookNotification(LeasedWork):
    """One notification owed to one endpoint: written in the transaction of the change it reports, delivered by
    the runner (kind teams.webhook; apps/teams/notifications.py). Its attempts are logged in WebhookDelivery."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=100)
    body = models.JSONField(default=dict)
    delivery_key = models.CharField(max_length=255, unique=True, help_text="One notification per change and endpoint")
    status = models.CharField(max_length=20, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="teams_notification_due_idx")]

    @property
    def team(self):
        return self.endpoint.team

    @property
    def team_id(self):
        return self.endpoint.team_id


class WebhookDelivery(models.Model):
    """One attempt to deliver a notification: the delivery log team admins read. Attempts of the same
    notification share `delivery_key` (the outbox dedup key) and count up in `attempt`."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=100)
    delivery_key = models.CharField(max_length=255, blank=True, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    outcome = models.CharField(max_length=20, choices=DeliveryOutcome.choices, default=DeliveryOutcome.DELIVERED)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    attempted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-attempted_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
