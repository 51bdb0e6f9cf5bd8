"""FOCUS 1.0 export: the month's charges with the specification's columns and types, in CSV and Parquet."""
import csv
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apps.costs.models import UsageDaily
from apps.deployments.models import Deployment
from apps.registry.models import Environment, ModelVersion, RegisteredModel
from tests.factories import member

from . import factories as f

pytestmark = pytest.mark.django_db

# The FOCUS 1.0 column set and data types (FinOps Open Cost and Usage Specification 1.0, "Columns"), written
# out here from the specification rather than imported, so the test checks the export against the standard.
FOCUS_1_0 = {
    "Decimal": ["BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
                "ListCost", "ListUnitPrice", "PricingQuantity"],
    "DateTime": ["BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"],
    "String": ["AvailabilityZone", "BillingAccountId", "BillingAccountName", "BillingCurrency", "ChargeCategory",
               "ChargeClass", "ChargeDescription", "ChargeFrequency", "CommitmentDiscountCategory",
               "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus",
               "CommitmentDiscountType", "ConsumedUnit", "InvoiceIssuerName", "PricingCategory", "PricingUnit",
               "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName",
               "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId",
               "SubAccountName"],
    "JSON": ["Tags"],
}
ARROW_TYPES = {"Decimal": pa.types.is_decimal, "DateTime": pa.types.is_timestamp, "String": pa.types.is_string,
               "JSON": pa.types.is_string}
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
DAY = date(2026, 10, 14)


@pytest.fixture
def october(team, other_team):
    cluster, gtype = f.cluster(), f.gpu_type()
    model = RegisteredModel.objects.create(name="fraud-classifier", team=team)
    v2 = ModelVersion.objects.create(model=model, version=2)
    deployment = Deployment.objects.create(team=team, name="fraud-api", model=model, cluster=cluster,
                                           environment=Environment.objects.get(name="production"), namespace="fraud")
    common = {"day": DAY, "cluster": cluster, "gpu_type": gtype}
    UsageDaily.objects.create(team=team, model_version=v2, deployment_id=deployment.pk, gpu_hours=Decimal("10"),
                              gpu_cost=Decimal("25"), other_cost=Decimal("1.20"), idle_gpu_hours=Decimal("7.5"),
                              idle_cost=Decimal("18.75"), **common)
    UsageDaily.objects.create(team=other_team, gpu_hours=Decimal("4"), gpu_cost=Decimal("10"), **common)
    UsageDaily.objects.create(team=None, kind="unallocated", gpu_hours=Decimal("2"), gpu_cost=Decimal("5"), **common)
    UsageDaily.objects.create(team=team, gpu_hours=Decimal("1"), gpu_cost=Decimal("2.5"),
                              day=date(2026, 11, 1), cluster=cluster, gpu_type=gtype)  # next month: not in October
    return deployment


def export(client, **query):
    response = client.get("/api/v1/costs/focus/", {"month": "2026-10", **query})
    assert response.status_code == 200, response.content[:500]
    return response


def test_csv_has_the_focus_columns_and_every_charge_of_the_month(october, platform_admin, client_for):
    response = export(client_for(platform_admin))
    assert response["Content-Type"] == "text/csv"
    assert 'filename="focus-2026-10.csv"' in response["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(response.content.decode()))
    focus_columns = [name for name in reader.fieldnames if not name.startswith("x_")]
    assert sorted(focus_columns) == sorted(name for names in FOCUS_1_0.values() for name in names)
    rows = list(reader)
    # fraud's GPU time and its CPU/memory, search's GPU time, the unallocated capacity: November is left out
    assert len(rows) == 4
    assert sum(Decimal(row["BilledCost"]) for row in rows) == Decimal("41.20")
    assert {row["ChargeCategory"] for row in rows} <= CHARGE_CATEGORIES
    for row in rows:
        assert row["BillingCurrency"] == "USD"
        assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
        assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == ("2026-10-14T00:00:00Z", "2026-10-15T00:00:00Z")
        assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
        assert Decimal(row["ListUnitPrice"]) * Decimal(row["PricingQuantity"]) == Decimal(row["ListCost"])
        json.loads(row["Tags"])

    gpu = next(row for row in rows if row["SubAccountId"] == "fraud" and row["PricingUnit"] == "GPU-Hours")
    assert gpu["ResourceId"] == f"deployment/{october.pk}" and gpu["ResourceName"] == "fraud/fraud-api"
    assert gpu["ResourceType"] == "Deployment" and gpu["SkuId"] == "local/A100-80GB"
    assert (gpu["ConsumedQuantity"], gpu["ListUnitPrice"], gpu["x_IdleCost"]) == ("10.000000", "2.500000", "18.750000")
    assert gpu["x_ModelVersion"] == "fraud-classifier v2"
    assert json.loads(gpu["Tags"]) == {"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB",
                                       "model": "fraud-classifier", "model_version": "2",
                                       "deployment": "fraud/fraud-api", "kind": "allocated"}
    cpu = next(row for row in rows if row["SubAccountId"] == "fraud" and row["PricingUnit"] == "Days")
    assert cpu["BilledCost"] == "1.200000" and cpu["SkuId"] == "local/cpu-memory"
    idle = next(row for row in rows if not row["SubAccountId"])
    assert idle["ResourceType"] == "GPU capacity" and idle["BilledCost"] == "5.000000"


def test_parquet_carries_the_focus_types(october, platform_admin, client_for):
    response = export(client_for(platform_admin), format="parquet")
    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.metadata[b"FocusVersion"] == b"1.0"
    for kind, names in FOCUS_1_0.items():
        for name in names:
            assert ARROW_TYPES[kind](table.schema.field(name).type), (name, table.schema.field(name).type)
    assert table.schema.field("BillingPeriodStart").type.tz == "UTC"
    rows = table.to_pylist()
    assert len(rows) == 4 and sum(row["BilledCost"] for row in rows) == Decimal("41.20")
    assert rows[0]["ChargePeriodStart"] == datetime(2026, 10, 14, tzinfo=timezone.utc)


def test_a_team_member_gets_their_teams_charges_only(october, team, client_for):
    rows = list(csv.DictReader(io.StringIO(export(client_for(member(team, "viewer"))).content.decode())))
    assert {row["SubAccountId"] for row in rows} == {"fraud"} and len(rows) == 2


@pytest.mark.parametrize("query,field", [
    ({"month": "2026-13"}, "month"), ({"month": "0000-01"}, "month"), ({"month": "october"}, "month"),
    ({"month": "2026-10", "format": "xlsx"}, "format"), ({}, "month"),
])
def test_bad_parameters_are_a_400(team, client_for, query, field):
    response = client_for(member(team, "viewer")).get("/api/v1/costs/focus/", query)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
