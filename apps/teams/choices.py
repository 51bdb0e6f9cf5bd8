from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    ML_ENGINEER = "ml_engineer", "ML engineer"
    APPROVER = "approver", "Approver"
    TEAM_ADMIN = "team_admin", "Team admin"


class MembershipSource(models.TextChoices):
    """Who keeps a membership: team admins by hand, or the SSO login that reconciles it from IdP groups."""

    MANUAL = "manual", "Manual"
    SSO = "sso", "From SSO"


# Roles a service account may hold: none that approves (separation of duties applies to people) or administers.
SERVICE_ACCOUNT_ROLES = (Role.VIEWER, Role.ML_ENGINEER)


class Capability(models.TextChoices):
    VIEW = "view", "See the team's objects"
    OPERATE = "operate", "Register, deploy and request promotions"
    APPROVE = "approve", "Approve or reject promotion requests"
    ADMINISTER = "administer", "Manage members, policies and settings"


# The one table that says what each role may do; services and the authorization matrix test read it.
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Capability.VIEW}),
    Role.ML_ENGINEER: frozenset({Capability.VIEW, Capability.OPERATE}),
    Role.APPROVER: frozenset({Capability.VIEW, Capability.APPROVE}),
    Role.TEAM_ADMIN: frozenset({Capability.VIEW, Capability.OPERATE, Capability.APPROVE, Capability.ADMINISTER}),
}


class PlatformRole(models.TextChoices):
    """Platform-wide grants, beside the per-team roles; platform admins (superusers) hold them all."""

    FINANCE = "finance", "Finance: reads the costs of every team and closes months, nothing else"


class TokenScope(models.TextChoices):
    READ = "read", "Read: see the user's teams (GET only)"
    OPERATE = "operate", "Operate: register, deploy, roll back, request promotions"
    APPROVE = "approve", "Approve: decide promotion requests"
    ADMIN = "admin", "Admin: everything the user may do"


# What an API token of each scope may do. A request made with a token holds, in each team, the
# capabilities of the user's role there intersected with these; platform-admin actions need `admin`.
SCOPE_CAPABILITIES: dict[str, frozenset[str]] = {
    TokenScope.READ: frozenset({Capability.VIEW}),
    TokenScope.OPERATE: frozenset({Capability.VIEW, Capability.OPERATE}),
    TokenScope.APPROVE: frozenset({Capability.VIEW, Capability.APPROVE}),
    TokenScope.ADMIN: frozenset(Capability.values),
}


class DeliveryOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered"  # the receiver answered 2xx
    REJECTED = "rejected", "Rejected by the receiver"  # 4xx other than 429: not retried
    FAILED = "failed", "Failed, retried"  # 5xx, 429, timeout, connection error: retried with backoff
    REFUSED = "refused", "Refused by the SSRF guard"  # forbidden address or a redirect: never sent or followed


class NotificationStatus(models.TextChoices):
    """A webhook notification to one endpoint, delivered by the runner (every attempt is in the delivery log)."""
    PENDING = "pending", "Pending"  # due, or waiting out the backoff after a failed attempt
    DELIVERED = "delivered", "Delivered"
    REJECTED = "rejected", "Rejected by the receiver"
    REFUSED = "refused", "Refused by the SSRF guard"
    SKIPPED = "skipped", "Not sent: the endpoint is disabled"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
