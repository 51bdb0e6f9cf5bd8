"""Matrix cases for the costs routes (/api/v1/costs/...)."""
import csv
import io
import time
import uuid
from datetime import date
from decimal import Decimal

from apps.costs.models import BudgetAlert, NodeToken, TeamBudget, UsageDaily
from apps.costs.services import allocation_start
from tests.costs import factories as f

from .base import Case, _archived


def _quota(team, actor):
    return f.quota(team, f.gpu_type(), guaranteed=4)


def _gpu_type(team, actor):
    return f.gpu_type()


def _price(team, actor):
    return f.gpu_type().prices.first()


CASES: dict[str, Case] = {
    "api:costs-admission": Case(
        make=_quota, success={"post": 200},
        body={"post": lambda team, obj: {"team": team.slug, "cluster": "local", "gpu_type": "A100-80GB",
                                         "gpu_count": 1}},
    ),
    "api:costs-quota-list": Case(
        make=_quota,
        body={"post": lambda team, obj: {"team": team.slug, "cluster": "local", "gpu_type": "A100-80GB",
                                         "guaranteed": 6}},
    ),
    "api:costs-quota-detail": Case(make=_quota),
    "api:costs-gpu-type-list": Case(
        make=_gpu_type, body={"post": lambda team, obj: {"cluster": "local", "name": "L4", "capacity": 8}},
    ),
    "api:costs-gpu-type-detail": Case(make=_gpu_type, success={"delete": 409}),  # priced: archive only
    "api:costs-gpu-type-archive": Case(make=_gpu_type, success={"post": 200}),
    "api:costs-gpu-type-restore": Case(make=lambda team, actor: _archived(_gpu_type(team, actor)),
                                       success={"post": 200}),
    "api:costs-price-list": Case(
        make=_price,
        body={"post": lambda team, obj: {"cluster": "local", "gpu_type": "A100-80GB", "pricing_class": "spot",
                                         "hourly_price": "1.10", "effective_from": "2026-01-01T00:00:00Z"}},
    ),
    "api:costs-price-detail": Case(make=_price),
}

def _node(team, actor):
    return NodeToken.objects.create(cluster=f.cluster(), node="gpu-node-1", gpu_count=1, prefix=uuid.uuid4().hex[:8],
                                    secret_hash="-")


CASES |= {
    "api:costs-samples": Case(
        make=_node,
        body={"post": lambda team, obj: {"batch_id": str(uuid.uuid4()), "cluster": "local", "node": "gpu-node-1",
                                         "samples": [{"ts": time.time(), "gpu_index": 0, "util": 50,
                                                      "mem_used_mb": 1000, "mem_total_mb": 80000}]}},
    ),
    "api:costs-node-token-list": Case(
        make=_node, body={"post": lambda team, obj: {"cluster": "local", "node": "n1", "gpu_count": 2}},
    ),
    "api:costs-node-token-detail": Case(make=_node),
    "api:costs-node-token-revoke": Case(make=_node, success={"post": 200}),
}


def _usage(team, actor):
    return UsageDaily.objects.create(day=date.today(), team=team, cluster=f.cluster(), gpu_cost=Decimal("3"))


def _budget(team, actor):
    return TeamBudget.objects.create(team=team, monthly_amount=Decimal("100"), thresholds=[50, 80, 100])


def _alert(team, actor):
    return BudgetAlert.objects.create(team=team, month=date.today().replace(day=1), threshold=50,
                                      spent=Decimal("60"), budget=Decimal("100"), forecast=Decimal("120"))


def _allocation(team, actor):
    return allocation_start(team=team, cluster="local", gpu_type=f.gpu_type(), gpu_count=1)


CASES |= {
    "api:costs-report": Case(
        make=_usage, list_like=True,
        listed=lambda response, obj: obj.team.slug in [row["key"] for row in response.json()["results"]],
    ),
    "api:costs-focus": Case(
        make=_usage, list_like=True, query=lambda team, obj: {"month": f"{obj.day:%Y-%m}"},
        listed=lambda response, obj: obj.team.slug in [
            row["SubAccountId"] for row in csv.DictReader(io.StringIO(response.content.decode()))],
    ),
    "api:costs-budget-list": Case(
        make=_budget, body={"post": lambda team, obj: {"team": team.slug, "monthly_amount": "500"}},
    ),
    "api:costs-budget-detail": Case(make=_budget),
    "api:costs-alert-list": Case(make=_alert),
    "api:costs-alert-detail": Case(make=_alert),
    "api:costs-allocation-list": Case(make=_allocation),
    "api:costs-allocation-detail": Case(make=_allocation),
    "api:costs-month-list": Case(),
    "api:costs-month-close": Case(kwargs=lambda obj: {"month": "2020-01"}, success={"post": 200}),
}
