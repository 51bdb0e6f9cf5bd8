from django.db import models


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PUBLISHED = "published", "Published"
    DEAD = "dead", "Dead letter"
