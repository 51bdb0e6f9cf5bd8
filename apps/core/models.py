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
