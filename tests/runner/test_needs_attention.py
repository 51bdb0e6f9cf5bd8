"""The dashboard's "Needs attention" panel lists the background work of the user's teams that ran out of
attempts, each with its last error and a link to the page where Retry is; other teams' work stays hidden."""
from django.test import Client
from django.utils import timezone

from apps.registry.choices import PromotionStatus
from apps.registry.models import Environment, PromotionRequest
from tests.factories import TeamFactory, member
from tests.monitoring import factories as f


def stuck_promotion(team, user):
    version = f.model_version(team, name=f"{team.slug}-clf")
    return PromotionRequest.objects.create(
        team=team, version=version, environment=Environment.objects.get(name="staging"), requested_by=user,
        status=PromotionStatus.NEEDS_ATTENTION, attempts=10, last_error="ConnectionError: MLflow unreachable",
        decided_at=timezone.now())


def test_the_dashboard_lists_what_needs_attention_in_my_teams_only(db):
    fraud, search = TeamFactory(slug="fraud"), TeamFactory(slug="search")
    me, other = member(fraud, "viewer", "me"), member(search, "viewer", "them")
    mine = f.run(f.monitor(fraud), status="needs_attention", attempts=3, last_error="MemoryError: window too big")
    f.run(f.monitor(search, name="search-drift"), status="needs_attention", attempts=3, last_error="theirs failed")
    promotion = stuck_promotion(fraud, me)
    stuck_promotion(search, other)

    page = Client()
    page.force_login(me)
    html = page.get("/").content.decode()

    assert 'id="needs-attention"' in html
    assert f'/registry/requests/{promotion.pk}/' in html and "ConnectionError: MLflow unreachable" in html
    assert f"fraud-drift run #{mine.pk}" in html and "MemoryError: window too big" in html
    assert "theirs failed" not in html and "search-clf" not in html


def test_no_panel_when_nothing_needs_attention(db):
    team = TeamFactory(slug="fraud")
    page = Client()
    page.force_login(member(team, "viewer", "me"))
    assert 'id="needs-attention"' not in page.get("/").content.decode()
