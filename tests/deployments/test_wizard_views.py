"""The deployment wizard's page for a draft the user can't see (another team's, or gone)."""
from apps.deployments.models import DeploymentDraft
from tests.factories import member


def test_another_teams_draft_starts_the_wizard_afresh(client, team, other_team):
    engineer = member(team, "ml_engineer")
    draft = DeploymentDraft.objects.create(team=other_team, created_by=member(other_team, "ml_engineer"), data={})
    client.force_login(engineer)

    response = client.get(f"/deployments/drafts/{draft.pk}/step/1/", follow=True)

    assert response.redirect_chain == [("/deployments/new/", 302)]
    assert f"Draft {draft.pk} not found." in [str(m) for m in response.context["messages"]]
