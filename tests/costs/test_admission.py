"""The admission check: quota, cohort borrowing, capacity, budget, and the 409 the API answers with."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.costs.errors import AdmissionRefused
from apps.costs.services import admission_check, admission_require, allocation_start, allocation_stop
from tests.factories import member

from . import factories as f

pytestmark = pytest.mark.django_db


def test_request_within_guaranteed_is_allowed_with_its_cost(team):
    gtype = f.gpu_type(price="2.50")
    f.quota(team, gtype, guaranteed=4)
    decision = admission_check(team=team, cluster="local", gpu_type="A100-80GB", gpu_count=2)
    assert decision.allowed and decision.fits == 4 and decision.borrowed == 0 and decision.in_use == 0
    assert decision.hourly_cost == Decimal("5.0000")
    assert decision.monthly_cost_estimate == Decimal("3650.00")


def test_request_over_quota_is_refused_with_what_would_fit(team):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=4)
    allocation_start(team=team, cluster=gtype.cluster, gpu_type=gtype, gpu_count=3)
    decision = admission_check(team=team, cluster=gtype.cluster, gpu_type=gtype.name, gpu_count=2)
    assert not decision.allowed and decision.fits == 1 and decision.in_use == 3
    assert "2 more do not fit, 1 would" in decision.reason
    with pytest.raises(AdmissionRefused) as refused:
        admission_require(team=team, cluster=gtype.cluster, gpu_type=gtype.name, gpu_count=2)
    assert isinstance(refused.value, Conflict)
    assert refused.value.extra == {
        "usage": {"in_use": 3, "gpu_type": "A100-80GB", "budget_remaining_gpu_hours": None},
        "request": {"gpu_type": "A100-80GB", "gpu_count": 2, "hours": None},
        "limit": {"guaranteed": 4, "borrow_limit": 0}, "fits": 1}


def test_stopped_allocations_free_their_gpus(team):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=2)
    allocation = allocation_start(team=team, cluster=gtype.cluster, gpu_type=gtype, gpu_count=2)
    assert not admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=1).allowed
    allocation_stop(allocation=allocation)
    assert admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=2).allowed
    with pytest.raises(Conflict, match="already stopped"):
        allocation_stop(allocation=allocation)


def test_borrowing_from_the_cohort_is_marked_and_bounded(team, other_team):
    gtype = f.gpu_type(capacity=100)
    f.quota(team, gtype, guaranteed=2, borrow_limit=3, cohort="research")
    f.quota(other_team, gtype, guaranteed=4, cohort="research")
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=4)
    assert decision.allowed and decision.borrowed == 2 and decision.fits == 5
    # The lender starts using its own GPUs: less to borrow.
    allocation_start(team=other_team, cluster="local", gpu_type=gtype, gpu_count=3)
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=4)
    assert not decision.allowed and decision.fits == 3
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=3)
    assert decision.allowed and decision.borrowed == 1


def test_no_borrowing_outside_a_cohort(team, other_team):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=1)
    f.quota(other_team, gtype, guaranteed=8)
    assert admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=2).fits == 1


def test_cluster_capacity_caps_what_fits(team, other_team):
    gtype = f.gpu_type(capacity=4)
    f.quota(team, gtype, guaranteed=4)
    allocation_start(team=other_team, cluster="local", gpu_type=gtype, gpu_count=3)
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=2)
    assert not decision.allowed and decision.fits == 1


def test_team_without_quota_is_refused_with_a_hint(team):
    f.gpu_type()
    decision = admission_check(team=team, cluster="local", gpu_type="A100-80GB", gpu_count=1)
    assert not decision.allowed and "has no quota for A100-80GB" in decision.reason


def test_monthly_gpu_hour_budget(team):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=8, monthly_gpu_hours=Decimal("10"))
    started = max(timezone.now() - timedelta(hours=2), f.month_start_now())
    allocation = allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=1, started_at=started)
    allocation_stop(allocation=allocation, stopped_at=started + timedelta(minutes=30))
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=2, hours=4)
    assert decision.budget_remaining_gpu_hours == pytest.approx(9.5, abs=0.01)
    assert decision.allowed
    decision = admission_check(team=team, cluster="local", gpu_type=gtype.name, gpu_count=2, hours=5)
    assert not decision.allowed and "needs 10 GPU-hours" in decision.reason


def test_cpu_only_work_is_always_allowed_and_free(team):
    decision = admission_check(team=team, cluster="local", gpu_type="", gpu_count=0)
    assert decision.allowed and decision.hourly_cost == 0 and "CPU-only" in decision.reason


@pytest.mark.parametrize("gpu_type,count,error,message", [
    ("A100-80GB", 0, InvalidInput, "gpu_count must be at least 1"),
    ("A100-80GB", -2, InvalidInput, "gpu_count must be at least 1"),
    ("", 2, InvalidInput, "Name the GPU type"),
    ("B200", 1, NotFound, "GPU type 'B200' is not in the catalog of cluster 'local'. Known types: A100-80GB"),
])
def test_bad_requests_say_what_to_fix(team, gpu_type, count, error, message):
    f.gpu_type()
    with pytest.raises(error, match=message):
        admission_check(team=team, cluster="local", gpu_type=gpu_type, gpu_count=count)


def test_unknown_cluster_is_not_found(team):
    with pytest.raises(NotFound, match="Cluster 'mars' not found"):
        admission_check(team=team, cluster="mars", gpu_type="A100-80GB", gpu_count=1)


# --- the API -------------------------------------------------------------------------------------------

def test_api_answers_200_with_the_decision(team, client_for):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=2)
    client = client_for(member(team, "viewer"))
    response = client.post("/api/v1/costs/admission", {"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB",
                                                       "gpu_count": 2, "hours": 3}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["allowed"] is True and response.json()["hourly_cost"] == "5.0000"


def test_api_refusal_is_409_with_usage_request_limit_and_fits(team, client_for):
    gtype = f.gpu_type()
    f.quota(team, gtype, guaranteed=2)
    allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=2)
    client = client_for(member(team, "ml_engineer"))
    response = client.post("/api/v1/costs/admission/", {"team": "fraud", "cluster": "local",
                                                        "gpu_type": "A100-80GB", "gpu_count": 1}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and "uses 2 × A100-80GB of guaranteed 2" in error["message"]
    assert error["fits"] == 0 and error["usage"]["in_use"] == 2 and error["limit"]["guaranteed"] == 2
    assert error["request"] == {"gpu_type": "A100-80GB", "gpu_count": 1, "hours": None}


@pytest.mark.parametrize("body,status,text", [
    ({"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "gpu_count": 0}, 400, "at least 1"),
    ({"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "gpu_count": "two"}, 400, "gpu_count"),
    ({"team": "fraud", "cluster": "nowhere", "gpu_type": "A100-80GB", "gpu_count": 1}, 404, "Cluster 'nowhere'"),
    ({"team": "fraud", "cluster": "local", "gpu_type": "Z9", "gpu_count": 1}, 404, "GPU type 'Z9'"),
    ({"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "gpu_count": 1, "gpus": 3}, 400, "Unknown field"),
    ({"team": "search", "cluster": "local", "gpu_type": "A100-80GB", "gpu_count": 1}, 404, "Team 'search'"),
])
def test_api_bad_input(team, other_team, client_for, body, status, text):
    f.gpu_type()
    response = client_for(member(team, "viewer")).post("/api/v1/costs/admission", body, format="json")
    assert response.status_code == status
    assert text in response.json()["error"]["message"]
