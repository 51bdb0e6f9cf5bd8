"""The month's charges in the FinOps FOCUS format (version 1.0), as CSV or Parquet, for finance tools.

One charge row per daily rollup row and cost component: GPU time (priced per GPU-hour of its type) and CPU +
memory (priced from the cluster's resource rates, one row per day). Teams are FOCUS sub-accounts, deployments
the resources; the whole control plane is one billing account in one currency (settings COSTS_CURRENCY,
COSTS_BILLING_ACCOUNT_ID/_NAME, COSTS_PROVIDER_NAME). There are no discounts or commitments in an internal
chargeback, so BilledCost = EffectiveCost = ListCost = ContractedCost. Our own figures ride in x_ columns, as
the specification allows.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings

from .choices import UsageKind
from .selectors import usage_daily_rows

FOCUS_VERSION = "1.0"
# FOCUS 1.0 columns and their data types (Decimal, DateTime, String, JSON), in the specification's order.
FOCUS_COLUMNS: dict[str, str] = {
    "AvailabilityZone": "String", "BilledCost": "Decimal", "BillingAccountId": "String",
    "BillingAccountName": "String", "BillingCurrency": "String", "BillingPeriodEnd": "DateTime",
    "BillingPeriodStart": "DateTime", "ChargeCategory": "String", "ChargeClass": "String",
    "ChargeDescription": "String", "ChargeFrequency": "String", "ChargePeriodEnd": "DateTime",
    "ChargePeriodStart": "DateTime", "CommitmentDiscountCategory": "String", "CommitmentDiscountId": "String",
    "CommitmentDiscountName": "String", "CommitmentDiscountStatus": "String", "CommitmentDiscountType": "String",
    "ConsumedQuantity": "Decimal", "ConsumedUnit": "String", "ContractedCost": "Decimal",
    "ContractedUnitPrice": "Decimal", "EffectiveCost": "Decimal", "InvoiceIssuerName": "String",
    "ListCost": "Decimal", "ListUnitPrice": "Decimal", "PricingCategory": "String", "PricingQuantity": "Decimal",
    "PricingUnit": "String", "ProviderName": "String", "PublisherName": "String", "RegionId": "String",
    "RegionName": "String", "ResourceId": "String", "ResourceName": "String", "ResourceType": "String",
    "ServiceCategory": "String", "ServiceName": "String", "SkuId": "String", "SkuPriceId": "String",
    "SubAccountId": "String", "SubAccountName": "String", "Tags": "JSON",
}
EXTRA_COLUMNS: dict[str, str] = {"x_IdleCost": "Decimal", "x_IdleGpuHours": "Decimal", "x_ModelVersion": "String"}
COLUMNS = {**FOCUS_COLUMNS, **EXTRA_COLUMNS}
FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

_AMOUNT = Decimal("0.000001")


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=dt_timezone.utc)


def _next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _deployment_names(ids: set[int]) -> dict[int, str]:
    from apps.deployments.models import Deployment

    return {pk: f"{team}/{name}" for pk, team, name in
            Deployment.objects.filter(pk__in=ids).values_list("pk", "team__slug", "name")}


def focus_rows(*, user, month: date, team: str | None = None) -> list[dict]:
    """The charges of the month the user may see (their teams; platform admins also the unallocated lines)."""
    first = month.replace(day=1)
    period_end = _next_month(first)
    usage = (usage_daily_rows(user=user, start=first, end=period_end - timedelta(days=1), team=team)
             .select_related("team", "cluster", "gpu_type", "model_version__model").order_by("day", "id"))
    usage = list(usage)
    names = _deployment_names({row.deployment_id for row in usage if row.deployment_id is not None})
    common = {
        "BillingAccountId": settings.COSTS_BILLING_ACCOUNT_ID, "BillingAccountName": settings.COSTS_BILLING_ACCOUNT_NAME,
        "BillingCurrency": settings.COSTS_CURRENCY, "BillingPeriodStart": _at(first), "BillingPeriodEnd": _at(period_end),
        "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
        "CommitmentDiscountCategory": None, "CommitmentDiscountId": None, "CommitmentDiscountName": None,
        "CommitmentDiscountStatus": None, "CommitmentDiscountType": None, "PricingCategory": "Standard",
        "InvoiceIssuerName": settings.COSTS_PROVIDER_NAME, "ProviderName": settings.COSTS_PROVIDER_NAME,
        "PublisherName": settings.COSTS_PROVIDER_NAME, "AvailabilityZone": None,
        "ServiceCategory": "AI and Machine Learning",
    }
    rows = []
    for usage_row in usage:
        rows.extend(_charges(usage_row, common, names))
    return rows


def _charges(usage, common: dict, names: dict[int, str]) -> list[dict]:
    unallocated = UsageKind.UNALLOCATED in (usage.kind, usage.adjusts_kind)
    # An adjustment corrects a closed month's figures (apps.costs.closing): FOCUS calls that a Correction.
    correction = f"Correction to {usage.adjusts_month:%B %Y}: " if usage.kind == UsageKind.ADJUSTMENT else ""
    version = usage.model_version
    model_label = f"{version.model.name} v{version.version}" if version else None
    deployment = names.get(usage.deployment_id) if usage.deployment_id is not None else None
    if unallocated:
        resource_id, resource_name, resource_type, service = (
            f"cluster/{usage.cluster.name}/gpu-capacity", f"Unallocated capacity on {usage.cluster.name}",
            "GPU capacity", "Unallocated GPU capacity")
    elif usage.deployment_id is not None:
        resource_id, resource_name, resource_type, service = (
            f"deployment/{usage.deployment_id}", deployment or f"deployment {usage.deployment_id} (deleted)",
            "Deployment", "Model serving")
    else:
        resource_id, resource_name, resource_type, service = (
            f"cluster/{usage.cluster.name}/workloads", f"Other workloads on {usage.cluster.name}", "Workload",
            "ML workloads")
    tags = {key: value for key, value in {
        "team": usage.team.slug if usage.team else None, "cluster": usage.cluster.name,
        "gpu_type": usage.gpu_type.name if usage.gpu_type else None,
        "model": version.model.name if version else None, "model_version": str(version.version) if version else None,
        "deployment": deployment, "kind": usage.kind,
        "adjusts_month": f"{usage.adjusts_month:%Y-%m}" if usage.adjusts_month else None}.items() if value is not None}
    base = {
        **common, "ChargePeriodStart": _at(usage.day), "ChargePeriodEnd": _at(usage.day + timedelta(days=1)),
        "RegionId": usage.cluster.name, "RegionName": usage.cluster.name, "ResourceId": resource_id,
        "ResourceName": resource_name, "ResourceType": resource_type, "ServiceName": service,
        "SubAccountId": usage.team.slug if usage.team else None, "SubAccountName": usage.team.name if usage.team else None,
        "Tags": json.dumps(tags, sort_keys=True), "x_ModelVersion": model_label,
        "ChargeClass": "Correction" if correction else None,
    }
    whose = f" for team {usage.team.slug}" if usage.team else ""
    what = "".join(f", {part}" for part in (model_label, deployment) if part)
    charges = []
    if usage.gpu_hours or usage.gpu_cost:  # every amount is exported, even one whose GPU type was not recorded
        hours, cost = usage.gpu_hours, usage.gpu_cost
        unit_price = (cost / hours).quantize(_AMOUNT) if hours else Decimal(0)
        gpu = usage.gpu_type.name if usage.gpu_type else "unknown-gpu-type"
        sku = f"{usage.cluster.name}/{gpu}"
        charges.append({**base, **_amounts(cost, quantity=hours, unit="GPU-Hours", unit_price=unit_price),
                        "ChargeDescription": f"{correction}{'Idle ' if unallocated else ''}{gpu} GPU time on "
                                             f"{usage.cluster.name}{whose}{what}",
                        "SkuId": sku, "SkuPriceId": f"{sku}/on_demand",
                        "x_IdleCost": usage.idle_cost, "x_IdleGpuHours": usage.idle_gpu_hours})
    if usage.other_cost:
        # The rollups keep CPU and memory as one amount per day: one charge for the day at that price.
        charges.append({**base, **_amounts(usage.other_cost, quantity=Decimal(1), unit="Days",
                                           unit_price=usage.other_cost),
                        "ChargeDescription": f"{correction}CPU and memory on {usage.cluster.name}{whose}{what}",
                        "SkuId": f"{usage.cluster.name}/cpu-memory", "SkuPriceId": f"{usage.cluster.name}/cpu-memory",
                        "x_IdleCost": None, "x_IdleGpuHours": None})
    return charges


def _amounts(cost: Decimal, *, quantity: Decimal, unit: str, unit_price: Decimal) -> dict:
    cost = cost.quantize(_AMOUNT)
    return {"BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
            "ListUnitPrice": unit_price, "ContractedUnitPrice": unit_price, "ConsumedQuantity": quantity,
            "ConsumedUnit": unit, "PricingQuantity": quantity, "PricingUnit": unit}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def focus_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_text(row.get(column)) for column in COLUMNS])
    return buffer.getvalue().encode()


def parquet_schema():
    import pyarrow as pa

    types = {"Decimal": pa.decimal128(24, 6), "DateTime": pa.timestamp("s", tz="UTC"), "String": pa.string(),
             "JSON": pa.string()}
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS.items()],
                     metadata={"FocusVersion": FOCUS_VERSION})


def focus_parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    table = pa.Table.from_pylist([{column: row.get(column) for column in COLUMNS} for row in rows], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
