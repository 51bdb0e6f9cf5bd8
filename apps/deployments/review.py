"""The wizard's review step (and POST …/deployments/preview/): everything a user checks before submit,
computed without writing anything: gate results, admission and cost, rendered manifests, diff vs live, and
the traffic split the cluster will serve at each step (approximate on the replica ratio, with warnings)."""
import difflib
import json

from apps.core.errors import Conflict, InvalidInput
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from . import capacity, traffic
from .choices import StrategyKind
from .models import Deployment, DeploymentRevision
from .spec import validate_resources, validate_strategy


def deployment_preview(*, actor, team, model_version, environment, cluster, name: str, resources=None,
                       strategy=None, namespace: str | None = None) -> dict:
    from apps.registry.selectors import gate_results, version_approved_for

    from workers.drivers import ApplyFailed, DriverUnavailable

    from .drivers import driver_for
    from .services import _check_cluster_strategy, namespace_for

    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    existing = Deployment.objects.filter(team=team, name=name).select_related("stable_revision").first()
    numbers = set(existing.revisions.values_list("number", flat=True)) if existing else set()
    resources = validate_resources(resources)
    strategy = validate_strategy(strategy, revision_numbers=numbers)
    _check_cluster_strategy(cluster=cluster, strategy=strategy)
    if strategy["kind"] == StrategyKind.AB and not existing:
        raise InvalidInput("An A/B/n split needs existing revisions; deploy one first.")
    ns = namespace or namespace_for(cluster=cluster, team=team, environment=environment)
    admission = capacity.admission_preview(team=team, cluster=cluster, resources=resources)
    probe = Deployment(team=team, name=name, model=model_version.model, environment=environment, cluster=cluster,
                       namespace=ns)
    revision = DeploymentRevision(deployment=probe, number=(max(numbers) + 1 if numbers else 1),
                                  model_version=model_version, strategy=strategy, resources=resources)
    try:
        manifests = driver_for(cluster).render(deployment=probe, revision=revision, weight=100)
        render_error = ""
    except (DriverUnavailable, ApplyFailed) as exc:
        manifests, render_error = [], str(exc)
    live = existing.stable_revision.manifests if existing and existing.stable_revision else []
    try:
        traffic_plan = traffic.plan(cluster=cluster, deployment=existing, strategy=strategy, resources=resources,
                                    new_number=revision.number)
    except Conflict as exc:
        traffic_plan = {"error": exc.message, "steps": [], "warnings": []}
    return {
        "approved": version_approved_for(version=model_version, environment=environment.name),
        "gates": gate_results(version=model_version, environment=environment),
        "admission": {"allowed": admission.allowed, "reason": admission.reason, "hourly_cost": admission.hourly_cost,
                      "monthly_cost_estimate": admission.monthly_cost_estimate, "detail": admission.detail},
        "namespace": ns,
        "resources": resources,
        "strategy": strategy,
        "manifests": manifests,
        "render_error": render_error,
        "diff": manifest_diff(live, manifests),
        "traffic": traffic_plan,
    }


def manifest_diff(before: list, after: list) -> str:
    def lines(objs):
        return json.dumps(objs, indent=2, sort_keys=True).splitlines()

    return "\n".join(difflib.unified_diff(lines(before), lines(after), "live", "new", lineterm=""))


def resources_text(resources: dict) -> str:
    """The review's words for a resources dict: "2 replicas · CPU 500m · memory 512Mi · 1 × A100-80GB"."""
    replicas = resources.get("replicas") or 1
    parts = [f"{replicas} replica{'s' if replicas != 1 else ''}", f"CPU {resources.get('cpu')}",
             f"memory {resources.get('memory')}"]
    if resources.get("gpu_count"):
        parts.append(f"{resources['gpu_count']} × {resources.get('gpu_type') or 'GPU'}")
    if scaling := resources.get("autoscaling"):
        parts.append(f"autoscaling {scaling.get('min')}–{scaling.get('max')} replicas at {scaling.get('target_cpu')} % CPU")
    return " · ".join(parts)


def strategy_text(strategy: dict) -> str:
    """The review's words for a strategy dict, e.g. "Canary: 10 % → 50 % → 100 %, pausing for promotion"."""
    kind = strategy.get("kind")
    label = dict(StrategyKind.choices).get(kind, kind)
    if kind == StrategyKind.CANARY:
        steps = strategy.get("steps") or []
        pauses = any(step.get("pause") for step in steps)
        weights = " → ".join(f"{step.get('weight')} %" for step in steps)
        return f"{label}: {weights}{', pausing for promotion after each step' if pauses else ''}"
    if kind == StrategyKind.BLUE_GREEN:
        return f"{label}: {'switch automatically' if strategy.get('auto_switch') else 'switch when promoted'} after the health check"
    if kind == StrategyKind.SHADOW:
        return f"{label}: mirror {strategy.get('percent')} % of traffic (responses discarded)"
    if kind == StrategyKind.AB:
        return f"{label}: " + ", ".join(
            f"{'this revision' if v.get('revision') == 'new' else 'r' + str(v.get('revision'))} {v.get('weight')} %"
            for v in strategy.get("variants") or [])
    return str(label)
