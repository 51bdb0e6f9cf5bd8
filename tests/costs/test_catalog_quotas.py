"""Catalog, prices with effective periods, quotas and budgets: platform admins edit, every change is audited."""
import pytest

from apps.audit.models import AuditEvent
from apps.costs.models import GpuPrice, Quota
from tests.factories import member

from . import factories as f

pytestmark = pytest.mark.django_db


def test_gpu_types_with_mig_profiles(client_for, platform_admin):
    f.cluster()
    client = client_for(platform_admin)
    response = client.post("/api/v1/costs/gpu-types/", {"cluster": "local", "name": "A100-80GB", "memory_gb": 80,
                                                         "capacity": 8}, format="json")
    assert response.status_code == 201
    response = client.post("/api/v1/costs/gpu-types/", {"cluster": "local", "name": "A100-80GB-1g.10gb",
                                                         "parent": "A100-80GB", "mig_profile": "1g.10gb",
                                                         "memory_gb": 10, "capacity": 7}, format="json")
    assert response.status_code == 201 and response.json()["parent"] == "A100-80GB"
    again = client.post("/api/v1/costs/gpu-types/", {"cluster": "local", "name": "A100-80GB"}, format="json")
    assert again.status_code == 409 and "already has GPU type 'A100-80GB'" in again.json()["error"]["message"]
    orphan = client.post("/api/v1/costs/gpu-types/", {"cluster": "local", "name": "x-1g", "mig_profile": "1g.5gb"},
                         format="json")
    assert orphan.status_code == 400 and "needs the parent GPU type" in orphan.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="costs.gpu_type.create").count() == 2


def test_overlapping_price_periods_are_refused(client_for, platform_admin):
    f.gpu_type(price=None)
    client = client_for(platform_admin)
    url = "/api/v1/costs/prices/"
    base = {"cluster": "local", "gpu_type": "A100-80GB", "hourly_price": "3.00"}
    assert client.post(url, base | {"effective_from": "2026-01-01T00:00:00Z", "effective_to": "2026-02-01T00:00:00Z"},
                       format="json").status_code == 201
    clash = client.post(url, base | {"effective_from": "2026-01-20T00:00:00Z"}, format="json")
    assert clash.status_code == 400
    assert "overlaps the on_demand price 3.0000 of A100-80GB from 2026-01-01T00:00:00+00:00" in \
        clash.json()["error"]["message"]
    # Another pricing class is its own timeline; a period right after is fine.
    assert client.post(url, base | {"pricing_class": "spot", "effective_from": "2026-01-20T00:00:00Z"},
                       format="json").status_code == 201
    assert client.post(url, base | {"effective_from": "2026-02-01T00:00:00Z"}, format="json").status_code == 201
    backwards = client.post(url, base | {"effective_from": "2026-05-01T00:00:00Z",
                                         "effective_to": "2026-04-01T00:00:00Z"}, format="json")
    assert backwards.status_code == 400 and "effective_to must be after" in backwards.json()["error"]["message"]
    negative = client.post(url, base | {"hourly_price": "-1", "effective_from": "2027-01-01T00:00:00Z"}, format="json")
    assert negative.status_code == 400


def test_a_price_change_closes_the_open_period(client_for, platform_admin):
    gtype = f.gpu_type(price=None)
    client = client_for(platform_admin)
    base = {"cluster": "local", "gpu_type": "A100-80GB"}
    client.post("/api/v1/costs/prices/", base | {"hourly_price": "3.40", "effective_from": "2026-01-01T00:00:00Z"},
                format="json")
    response = client.post("/api/v1/costs/prices/", base | {"hourly_price": "2.95", "close_previous": True,
                                                            "effective_from": "2026-11-13T00:00:00Z"}, format="json")
    assert response.status_code == 201
    periods = list(GpuPrice.objects.filter(gpu_type=gtype).order_by("effective_from")
                   .values_list("hourly_price", "effective_to"))
    assert [str(p) for p, _ in periods] == ["3.4000", "2.9500"]
    assert periods[0][1].isoformat() == "2026-11-13T00:00:00+00:00" and periods[1][1] is None


def test_quota_upsert_is_audited_with_before_and_after(client_for, platform_admin, team):
    f.gpu_type()
    client = client_for(platform_admin)
    body = {"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "guaranteed": 4}
    assert client.post("/api/v1/costs/quotas/", body, format="json").status_code == 201
    response = client.post("/api/v1/costs/quotas/", body | {"guaranteed": 6, "borrow_limit": 2, "cohort": "ml"},
                           format="json")
    assert response.status_code == 201 and response.json()["cohort"] == "ml"
    assert Quota.objects.get().guaranteed == 6
    event = AuditEvent.objects.filter(action="costs.quota.set").order_by("id").last()
    assert event.changes == {"guaranteed": [4, 6], "borrow_limit": [0, 2], "cohort": [None, "ml"]}
    assert event.team_id == team.pk and event.actor_label == "root-admin"
    listed = client_for(member(team, "viewer")).get("/api/v1/costs/quotas/").json()["results"]
    assert listed[0]["in_use"] == 0 and listed[0]["headroom"] == 6


@pytest.mark.parametrize("body,message", [
    ({"guaranteed": -1}, "can't be negative"),
    ({"guaranteed": 2, "borrow_limit": 2}, "Borrowing needs a cohort"),
    ({"guaranteed": 2, "gpu_type": "TPU"}, "GPU type 'TPU' is not in the catalog"),
    ({"guaranteed": 2, "team": "nobody"}, "Team 'nobody' not found"),
])
def test_quota_bad_input(client_for, platform_admin, team, body, message):
    f.gpu_type()
    response = client_for(platform_admin).post("/api/v1/costs/quotas/", {"team": "fraud", "cluster": "local",
                                                                          "gpu_type": "A100-80GB"} | body,
                                               format="json")
    assert response.status_code in (400, 404) and message in response.json()["error"]["message"]


def test_team_admins_cannot_change_quotas(client_for, team):
    f.gpu_type()
    response = client_for(member(team, "team_admin")).post(
        "/api/v1/costs/quotas/", {"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "guaranteed": 99},
        format="json")
    assert response.status_code == 403 and not Quota.objects.exists()


def test_budget_set_and_alert_list(client_for, platform_admin, team):
    client = client_for(platform_admin)
    response = client.post("/api/v1/costs/budgets/", {"team": "fraud", "monthly_amount": "1000"}, format="json")
    assert response.status_code == 201 and response.json()["thresholds"] == [50, 80, 100]
    bad = client.post("/api/v1/costs/budgets/", {"team": "fraud", "monthly_amount": "0"}, format="json")
    assert bad.status_code == 400
    assert AuditEvent.objects.filter(action="costs.budget.set").count() == 1
