"""The finance role: a platform-wide grant that reads the costs of every team (what a platform admin sees when
reading costs) and closes months, and nothing else — no cost writes, no other team data."""
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.costs.models import CostMonth, UsageDaily
from apps.teams.models import PlatformRoleGrant
from apps.teams.services import api_token_create
from tests.deployments.factories import deployment_in
from tests.factories import UserFactory, member
from tests.registry.factories import RegisteredModelFactory

from . import factories as f

pytestmark = pytest.mark.django_db

TODAY = timezone.now().date()
MONTH = f"{TODAY:%Y-%m}"
LAST_MONTH = (TODAY.replace(day=1) - timedelta(days=1)).replace(day=1)


@pytest.fixture
def finance(db):
    user = UserFactory(username="fin")
    PlatformRoleGrant.objects.create(user=user, role="finance")
    return user


@pytest.fixture
def usage(team, other_team):
    """A day of GPU cost for fraud (3.00) and search (5.00) and 2.00 of capacity nobody held."""
    cluster = f.cluster()
    for owner, cost in ((team, "3"), (other_team, "5")):
        UsageDaily.objects.create(day=TODAY, team=owner, cluster=cluster, gpu_cost=Decimal(cost))
    UsageDaily.objects.create(day=TODAY, kind="unallocated", cluster=cluster, gpu_cost=Decimal("2"))


def client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user=user)
    return api


def report(api) -> dict[str, str]:
    response = api.get("/api/v1/costs/report/", {"month": MONTH})
    assert response.status_code == 200, response.content
    return {row["key"]: row["total_cost"] for row in response.json()["results"]}


def test_finance_reads_every_teams_costs_as_a_platform_admin_does(finance, platform_admin, team, usage):
    assert report(client(finance)) == report(client(platform_admin)) == {
        "fraud": "3.00", "search": "5.00", "unallocated": "2.00"}
    assert report(client(member(team, "viewer"))) == {"fraud": "3.00"}  # a team member: their team only

    focus = client(finance).get("/api/v1/costs/focus/", {"month": MONTH})
    assert focus.status_code == 200
    charges = list(csv.DictReader(io.StringIO(focus.content.decode())))
    assert sorted((row["SubAccountId"], row["BilledCost"]) for row in charges) == [
        ("", "2.000000"), ("fraud", "3.000000"), ("search", "5.000000")]

    # budgets, alerts, allocations and quotas of every team, the catalog and the months
    for path in ("budgets", "alerts", "allocations", "quotas", "gpu-types", "prices", "months"):
        assert client(finance).get(f"/api/v1/costs/{path}/").status_code == 200, path


def test_a_read_token_of_finance_reads_every_team_and_writes_nothing(finance, usage):
    _, token = api_token_create(actor=finance, name="bi-dashboard", scope="read")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert set(report(api)) == {"fraud", "search", "unallocated"}
    refused = api.post(f"/api/v1/costs/months/{LAST_MONTH:%Y-%m}/close/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "token_scope"
    assert not CostMonth.objects.exists()

    # Closing a month is a platform-level write: an admin-scoped token, which gives finance nothing more.
    _, token = api_token_create(actor=finance, name="month-end", scope="admin")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.post(f"/api/v1/costs/months/{LAST_MONTH:%Y-%m}/close/").status_code == 200
    assert api.post("/api/v1/costs/budgets/", {"team": "fraud", "monthly_amount": "1"}, format="json").status_code == 403
    assert api.get(reverse("api:registry-model-list")).json()["results"] == []


def test_finance_writes_no_prices_quotas_or_budgets(finance, team, usage):
    gtype = f.gpu_type()
    api = client(finance)
    writes = {
        "prices": {"cluster": "local", "gpu_type": gtype.name, "hourly_price": "1.00",
                   "effective_from": "2026-01-01T00:00:00Z"},
        "quotas": {"team": team.slug, "cluster": "local", "gpu_type": gtype.name, "guaranteed": 8},
        "budgets": {"team": team.slug, "monthly_amount": "1000"},
        "gpu-types": {"cluster": "local", "name": "L4", "capacity": 8},
        "node-tokens": {"cluster": "local", "node": "n1", "gpu_count": 1},
    }
    for path, body in writes.items():
        response = api.post(f"/api/v1/costs/{path}/", body, format="json")
        assert response.status_code == 403, (path, response.content)
        assert response.json()["error"]["message"] == "Only platform admins may do this."
    assert api.get("/api/v1/costs/node-tokens/").status_code == 403  # platform plumbing, not costs
    assert not AuditEvent.objects.filter(actor=finance).exists()


def test_finance_sees_no_registry_deployment_or_audit_data(finance, team):
    model = RegisteredModelFactory(team=team, team_source="assigned")
    deployment = deployment_in(team)
    api = client(finance)
    for name in ("registry-model-list", "deployments-deployment-list", "audit-event-list", "team-list"):
        assert api.get(reverse(f"api:{name}")).json()["results"] == [], name
    for name, obj in (("registry-model-detail", model), ("deployments-deployment-detail", deployment)):
        assert api.get(reverse(f"api:{name}", kwargs={"pk": obj.pk})).status_code == 404, name


def test_finance_closes_a_month_audited(finance, team):
    response = client(finance).post(f"/api/v1/costs/months/{LAST_MONTH:%Y-%m}/close/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "closed" and response.json()["closed_by"] == "fin"
    event = AuditEvent.objects.get(action="costs.month.close")
    assert event.actor == finance and event.changes["state"] == ["open", "closed"]

    refused = client(member(team, "team_admin")).post(f"/api/v1/costs/months/{LAST_MONTH:%Y-%m}/close/")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only platform admins and users with the 'finance' role may do this."


def test_only_platform_admins_grant_and_revoke_finance_audited(finance, platform_admin, team, usage):
    analyst = UserFactory(username="analyst")
    body = {"username": "analyst", "role": "finance"}
    for someone in (finance, member(team, "team_admin")):
        refused = client(someone).post("/api/v1/platform-roles/", body, format="json")
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Only platform admins may do this."
    assert client(finance).get("/api/v1/platform-roles/").status_code == 403

    granted = client(platform_admin).post("/api/v1/platform-roles/", body, format="json")
    assert granted.status_code == 201
    assert granted.json() | {"id": 0, "granted_at": ""} == {"id": 0, "username": "analyst", "role": "finance",
                                                            "granted_by": "root-admin", "granted_at": ""}
    again = client(platform_admin).post("/api/v1/platform-roles/", body, format="json")
    assert again.status_code == 409 and again.json()["error"]["message"] == "'analyst' has the 'finance' role already."
    unknown = client(platform_admin).post("/api/v1/platform-roles/", {"username": "nobody", "role": "finance"},
                                          format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["fields"] == {"username": ["unknown user"]}
    assert set(report(client(analyst))) == {"fraud", "search", "unallocated"}
    assert client(analyst).get(reverse("api:me")).json()["platform_roles"] == ["finance"]

    grant_id = granted.json()["id"]
    assert client(platform_admin).delete(f"/api/v1/platform-roles/{grant_id}/").status_code == 204
    analyst = type(analyst).objects.get(pk=analyst.pk)  # a fresh request: no cached roles
    assert report(client(analyst)) == {}
    events = AuditEvent.objects.filter(action__startswith="platform_role.").order_by("id")
    assert [(e.action, e.actor, e.changes) for e in events] == [
        ("platform_role.grant", platform_admin, {"user": [None, "analyst"], "role": [None, "finance"]}),
        ("platform_role.revoke", platform_admin, {"user": ["analyst", None], "role": ["finance", None]}),
    ]


def test_costs_page_shows_finance_every_team_and_the_month_close(finance, usage):
    browser = Client()
    browser.force_login(finance)
    page = browser.get("/costs/", {"month": f"{LAST_MONTH:%Y-%m}"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="fraud"' in html and 'value="search"' in html and 'id="close-month"' in html
    assert 'id="nodes-link"' not in html  # node registration stays with platform admins
    quotas = browser.get("/costs/quotas/", {"team": "search"}).content.decode()
    assert 'team search</small>' in quotas and 'id="quota-form"' not in quotas  # reads any team's quotas, edits none


def test_django_admin_grants_and_revokes_through_the_audited_services(platform_admin):
    analyst = UserFactory(username="analyst")
    browser = Client()
    browser.force_login(platform_admin)
    added = browser.post("/admin/teams/platformrolegrant/add/", {"user": analyst.pk, "role": "finance"})
    assert added.status_code == 302, added.content
    grant = PlatformRoleGrant.objects.get(user=analyst, role="finance")
    assert grant.granted_by == platform_admin
    deleted = browser.post(f"/admin/teams/platformrolegrant/{grant.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not PlatformRoleGrant.objects.exists()
    assert list(AuditEvent.objects.filter(action__startswith="platform_role.").values_list("action", flat=True)
                .order_by("id")) == ["platform_role.grant", "platform_role.revoke"]
