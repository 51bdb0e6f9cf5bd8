"""Alias history pages like every other list: a model promoted hundreds of times answers in pages."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.registry.choices import AliasSource
from apps.registry.models import AliasHolding
from tests.deployments.factories import model_version
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_alias_history_is_paginated(client_for, team):
    version = model_version(team)
    start = timezone.now() - timedelta(days=30)
    AliasHolding.objects.bulk_create([
        AliasHolding(model=version.model, alias="staging", version=version, version_number=version.version,
                     since=start + timedelta(hours=i), until=start + timedelta(hours=i + 1), source=AliasSource.OUTSIDE)
        for i in range(60)])
    client = client_for(member(team, "viewer"))
    url = f"/api/v1/registry/models/{version.model_id}/alias-history/"
    first = client.get(url, {"page_size": 25}).json()
    assert first["count"] == 60 and len(first["results"]) == 25 and first["next"]
    last = client.get(url, {"page_size": 25, "page": 3}).json()
    assert len(last["results"]) == 10 and last["next"] is None
    assert first["results"][0]["since"] > last["results"][-1]["since"]  # newest first
