"""The deployment pages as each role sees them: the status line, and who may start the wizard."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.deployments.factories import deployment_in, local_cluster
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_the_warm_standby_is_named_only_inside_its_window(client, team):
    deployment = deployment_in(team, "healthy", cluster=local_cluster())
    client.force_login(member(team, "viewer", "vera-warm"))
    assert "r1 kept warm until" in client.get(f"/deployments/{deployment.pk}/").content.decode()
    type(deployment).objects.filter(pk=deployment.pk).update(warm_until=timezone.now() - timedelta(minutes=1))
    assert "kept warm" not in client.get(f"/deployments/{deployment.pk}/").content.decode()


def test_a_viewer_is_told_before_the_wizard_that_they_cannot_deploy(client, team):
    client.force_login(member(team, "viewer", "vera-wizard"))
    response = client.get("/deployments/new/")
    page = response.content.decode()
    assert response.status_code == 403 and 'id="wizard-form"' not in page
    assert f"Deploying in team {team.slug} needs the ML engineer or team admin role" in page
