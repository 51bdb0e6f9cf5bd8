from django.conf import settings
from django.db import models


class AllowedNetwork(models.Model):
    """A range the SSRF guard lets server-side requests reach on top of SSRF_ALLOWED_CIDRS (an internal
    webhook relay, an on-premises cluster): added and removed by platform admins, audited."""

    cidr = models.CharField(max_length=50, unique=True)
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cidr"]

    def __str__(self) -> str:
        return self.cidr


class IdempotencyKey(models.Model):
    """The stored answer to a POST sent with an `Idempotency-Key` header, so a retried call (a CI job whose
    connection dropped) gets the first call's response instead of starting the work twice. Kept 24 hours."""

    principal = models.CharField(max_length=64, help_text="Whose key: the user the request authenticated as")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="sha256 of method, path, query and canonical body")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while the first call runs")
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="core_idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="core_idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.principal}:{self.key}"
