from django.db import models

from .choices import ClusterKind


class Cluster(models.Model):
    """A deployment target shared by teams; platform admins register it.

    Kubernetes credentials are stored Fernet-encrypted (see services) and never leave through the API.
    """

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=20, choices=ClusterKind.choices)
    description = models.CharField(max_length=200, blank=True)
    api_url = models.URLField(max_length=500, blank=True)
    credentials_encrypted = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
