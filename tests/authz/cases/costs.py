"""Matrix cases for the costs routes (/api/v1/costs/...)."""
import time
import uuid

from tests.costs import factories as f

from .base import Case


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
    "api:costs-gpu-type-detail": Case(make=_gpu_type),
    "api:costs-price-list": Case(
        make=_price,
        body={"post": lambda team, obj: {"cluster": "local", "gpu_type": "A100-80GB", "pricing_class": "spot",
                                         "hourly_price": "1.10", "effective_from": "2026-01-01T00:00:00Z"}},
    ),
    "api:costs-price-detail": Case(make=_price),
}

CASES |= {
    "api:costs-samples": Case(
        make=lambda team, actor: f.cluster(),
        body={"post": lambda team, obj: {"batch_id": str(uuid.uuid4()), "cluster": "local", "node": "gpu-node-1",
                                         "samples": [{"ts": time.time(), "gpu_index": 0, "util": 50,
                                                      "mem_used_mb": 1000, "mem_total_mb": 80000}]}},
    ),
    "api:costs-node-tokens": Case(
        make=lambda team, actor: f.cluster(), body={"post": lambda team, obj: {"cluster": "local", "node": "n1"}},
    ),
}
