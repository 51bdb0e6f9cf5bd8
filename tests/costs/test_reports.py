"""Cost reports from the daily rollups: groupings, idle cost, unallocated line and sharing, scoping, exports."""
import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest

from apps.costs.models import UsageDaily
from apps.costs.selectors import cost_report
from apps.registry.models import ModelVersion, RegisteredModel
from tests.factories import member

from . import factories as f

pytestmark = pytest.mark.django_db

DAY = date(2026, 10, 14)


@pytest.fixture
def usage(team, other_team):
    cluster, gtype = f.cluster(), f.gpu_type()
    model = RegisteredModel.objects.create(name="fraud-classifier", team=team)
    v1 = ModelVersion.objects.create(model=model, version=1)
    v2 = ModelVersion.objects.create(model=model, version=2)
    common = {"day": DAY, "cluster": cluster, "gpu_type": gtype}
    UsageDaily.objects.create(team=team, model_version=v1, deployment_id=7, gpu_hours=10, gpu_cost=Decimal("30"),
                              idle_gpu_hours=4, idle_cost=Decimal("12"), **common)
    UsageDaily.objects.create(team=team, model_version=v2, gpu_hours=10, gpu_cost=Decimal("30"),
                              other_cost=Decimal("5"), **common)
    UsageDaily.objects.create(team=other_team, gpu_hours=20, gpu_cost=Decimal("35"), **common)
    UsageDaily.objects.create(team=None, gpu_hours=1, gpu_cost=Decimal("3"), **common)  # unattributed
    UsageDaily.objects.create(team=None, kind="unallocated", gpu_hours=100, gpu_cost=Decimal("100"), **common)
    return v1, v2


def by_key(rows):
    return {row["key"]: row for row in rows}


def test_per_team_with_idle_cost_and_the_unallocated_line(usage, platform_admin):
    rows = by_key(cost_report(user=platform_admin, start=DAY, end=DAY))
    assert list(rows) == ["fraud", "search", "unattributed", "unallocated"]
    assert rows["fraud"]["total_cost"] == Decimal("65.00") and rows["fraud"]["idle_cost"] == Decimal("12.00")
    assert rows["search"]["idle_cost"] is None  # no NVML data: unknown, not zero
    assert rows["unallocated"]["total_cost"] == Decimal("100.00")


def test_sharing_unallocated_capacity_in_proportion_to_cost(usage, platform_admin):
    rows = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, share_unallocated=True))
    assert "unallocated" not in rows
    # 100 spread over 65 / 35 / 3 (103 in all)
    assert rows["fraud"]["shared_unallocated"] == Decimal("63.11")
    assert sum(r["total_cost"] for r in rows.values()) == pytest.approx(Decimal("203.00"), abs=Decimal("0.02"))


def test_team_members_see_their_team_only_but_get_their_share(usage, team):
    viewer = member(team, "viewer")
    assert [r["key"] for r in cost_report(user=viewer, start=DAY, end=DAY)] == ["fraud"]
    shared = cost_report(user=viewer, start=DAY, end=DAY, share_unallocated=True)
    assert shared[0]["shared_unallocated"] == Decimal("63.11")


def test_per_model_version_and_deployment(usage, platform_admin):
    v1, v2 = usage
    versions = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, group_by="version", team="fraud"))
    assert versions[str(v1.pk)]["label"] == "fraud-classifier v1" and versions[str(v2.pk)]["total_cost"] == 35
    assert versions[str(v1.pk)]["cost_per_1k_predictions"] is None  # no prediction counts recorded
    deployments = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, group_by="deployment", team="fraud"))
    assert deployments["7"]["gpu_cost"] == 30 and deployments["none"]["gpu_cost"] == 30




def test_api_report_and_exports(usage, team, client_for):
    client = client_for(member(team, "viewer"))
    response = client.get("/api/v1/costs/report/", {"month": "2026-10", "group_by": "team"})
    assert response.status_code == 200
    assert [r["key"] for r in response.json()["results"]] == ["fraud"]
    response = client.get("/api/v1/costs/report/", {"month": "2026-10", "format": "csv"})
    assert response["Content-Disposition"] == 'attachment; filename="costs-team-2026-10-01-2026-10-31.csv"'
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0]["label"] == "fraud" and table[0]["total_cost"] == "65.00" and table[0]["idle_cost"] == "12.00"
    response = client.get("/api/v1/costs/report/", {"month": "2026-10", "format": "jsonl", "group_by": "model"})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines[0]["label"] == "fraud-classifier" and lines[0]["total_cost"] == "65.00"


@pytest.mark.parametrize("query,message", [
    ({"group_by": "planet"}, "group_by"),
    ({"start": "2026-10-10", "end": "2026-10-01"}, "before the start"),
    ({"month": "2026-13"}, "month must look like"),
    ({"format": "xlsx"}, "format"),
    ({"colour": "red"}, "Unknown field"),
    ({"month": "0000-01"}, "month must look like"),
    ({"start": "2026-11-01", "end": "9999-12-31", "group_by": "version"}, "at most 1096 days"),
    ({"start": "0001-01-01", "end": "0001-01-02"}, "from 2000-01-01 on"),
    ({"month": "2026-11", "start": "2026-11-01"}, "not both"),
])
def test_api_report_bad_input(team, client_for, query, message):
    response = client_for(member(team, "viewer")).get("/api/v1/costs/report/", query)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_cost_per_1000_predictions_from_the_real_prediction_log(usage, platform_admin):
    """Through the monitoring app's prediction log (apps.monitoring.logstore), not a stub."""
    import uuid
    from datetime import datetime, timezone

    from apps.monitoring import logstore

    v1, v2 = usage
    ts = datetime(2026, 10, 14, 12, tzinfo=timezone.utc)
    logstore.ensure_partitions(ts, ts)
    rows = [(v1.pk, 7, 1, ts, str(uuid.uuid4()), {"x": 1}, "1", 1.0, 0.9, 3.0, "")] * 1500
    logstore.copy_rows(rows)
    by_version = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, group_by="version"))
    assert by_version[str(v1.pk)]["predictions"] == 1500
    assert by_version[str(v1.pk)]["cost_per_1k_predictions"] == Decimal("20.0000")  # 30 / 1.5
    assert by_version[str(v2.pk)]["cost_per_1k_predictions"] is None


@pytest.fixture
def two_deployments(team):
    """One version served by two deployments, each with its own cost and its own predictions."""
    import uuid
    from datetime import datetime, timezone

    from apps.deployments.models import Deployment
    from apps.monitoring import logstore
    from apps.registry.models import Environment

    cluster, gtype = f.cluster(), f.gpu_type()
    model = RegisteredModel.objects.create(name="ranker", team=team)
    version = ModelVersion.objects.create(model=model, version=3)
    production = Environment.objects.get(name="production")
    blue, green = (Deployment.objects.create(team=team, name=name, model=model, cluster=cluster,
                                             environment=production, namespace="fraud") for name in ("blue", "green"))
    for deployment, cost in ((blue, "40"), (green, "10")):
        UsageDaily.objects.create(day=DAY, team=team, cluster=cluster, gpu_type=gtype, model_version=version,
                                  deployment_id=deployment.pk, gpu_hours=4, gpu_cost=Decimal(cost))
    ts = datetime(2026, 10, 14, 12, tzinfo=timezone.utc)
    logstore.ensure_partitions(ts, ts)
    logstore.copy_rows([(version.pk, blue.pk, 1, ts, str(uuid.uuid4()), {"x": 1}, "1", 1.0, 0.9, 3.0, "")] * 1000
                       + [(version.pk, green.pk, 1, ts, str(uuid.uuid4()), {"x": 1}, "1", 1.0, 0.9, 3.0, "")] * 4000)
    return version, blue, green


def test_cost_per_1000_predictions_per_deployment_and_per_version(two_deployments, platform_admin):
    version, blue, green = two_deployments
    per_deployment = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, group_by="deployment"))
    assert per_deployment[str(blue.pk)]["label"] == "fraud/blue" and per_deployment[str(blue.pk)]["team"] == "fraud"
    assert per_deployment[str(blue.pk)]["predictions"] == 1000
    assert per_deployment[str(blue.pk)]["cost_per_1k_predictions"] == Decimal("40.0000")  # 40 / 1
    assert per_deployment[str(green.pk)]["cost_per_1k_predictions"] == Decimal("2.5000")  # 10 / 4
    per_version = by_key(cost_report(user=platform_admin, start=DAY, end=DAY, group_by="version"))
    assert per_version[str(version.pk)]["predictions"] == 5000
    assert per_version[str(version.pk)]["cost_per_1k_predictions"] == Decimal("10.0000")  # 50 / 5


def test_multi_dimension_grouping_names_every_part(two_deployments, platform_admin):
    version, blue, green = two_deployments
    rows = cost_report(user=platform_admin, start=DAY, end=DAY, group_by="team,model,deployment")
    assert [(r["key"], r["label"]) for r in rows] == [
        (f"fraud|ranker|{blue.pk}", "fraud · ranker · fraud/blue"),
        (f"fraud|ranker|{green.pk}", "fraud · ranker · fraud/green")]
    assert {(r["team"], r["model"], r["version"], r["deployment"], r["currency"]) for r in rows} == {
        ("fraud", "ranker", "ranker v3", "fraud/blue", "USD"), ("fraud", "ranker", "ranker v3", "fraud/green", "USD")}


def test_api_amounts_are_decimal_strings_and_groupings_combine(two_deployments, team, client_for):
    client = client_for(member(team, "viewer"))
    response = client.get("/api/v1/costs/report/", {"month": "2026-10", "group_by": "model,deployment"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["group_by"] == "model,deployment"
    assert {row["total_cost"] for row in body["results"]} == {"40.00", "10.00"}  # strings, as in CSV and JSONL
    csv_response = client.get("/api/v1/costs/report/", {"month": "2026-10", "group_by": "team,deployment",
                                                        "format": "csv"})
    assert 'filename="costs-team-deployment-2026-10-01-2026-10-31.csv"' in csv_response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert {(row["team"], row["deployment"], row["currency"]) for row in table} == {
        ("fraud", "fraud/blue", "USD"), ("fraud", "fraud/green", "USD")}
    for bad in ("team,team", "team,planet", ","):
        response = client.get("/api/v1/costs/report/", {"month": "2026-10", "group_by": bad})
        assert response.status_code == 400 and "group_by" in response.json()["error"]["fields"]
