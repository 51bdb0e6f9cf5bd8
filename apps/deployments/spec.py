"""Validation of the resources and strategy a user asks for; every message says what to fix."""
import re

from apps.core.errors import InvalidInput

from .choices import StrategyKind

CPU_RE = re.compile(r"^(\d{1,7}(\.\d{1,3})?|\d{1,10}m)$")
MEMORY_RE = re.compile(r"^(\d{1,15})(\.\d{1,6})?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# One model server's requests: far above any node, well inside the cost columns (cpu_cores, memory_gb).
MAX_CPU_MILLICORES = 1024 * 1000
MAX_MEMORY_BYTES = 16 * 2**40
DEFAULT_RESOURCES = {"cpu": "500m", "memory": "512Mi", "gpu_type": "", "gpu_count": 0, "replicas": 1,
                     "autoscaling": None}


def _int(value, field: str, *, minimum: int, maximum: int = 1000) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            raise InvalidInput(f"{field} must be a whole number between {minimum} and {maximum}, got {value!r}.",
                               fields={field: [f"Expected a whole number, got {value!r}."]})
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{field} must be between {minimum} and {maximum}, got {value}.",
                           fields={field: [f"Must be between {minimum} and {maximum}."]})
    return value


def _bool(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false (a JSON boolean), got {value!r}.",
                           fields={field: [f"Expected true or false, got {value!r}."]})
    return value


def cpu_millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def memory_bytes(memory: str) -> float:
    number, fraction, unit = MEMORY_RE.match(memory).groups()
    return float(number + (fraction or "")) * MEMORY_UNITS[unit or ""]


def validate_resources(data: dict | None) -> dict:
    data = {**DEFAULT_RESOURCES, **(data or {})}
    unknown = set(data) - set(DEFAULT_RESOURCES)
    if unknown:
        raise InvalidInput(f"Unknown resource fields: {', '.join(sorted(unknown))}. Allowed: "
                           f"{', '.join(DEFAULT_RESOURCES)}.", fields={k: ["Unknown field."] for k in unknown})
    cpu, memory = str(data["cpu"]).strip(), str(data["memory"]).strip()
    if not CPU_RE.match(cpu) or not 0 < cpu_millicores(cpu) <= MAX_CPU_MILLICORES:
        raise InvalidInput(f"cpu must be a Kubernetes CPU quantity from '1m' to '{MAX_CPU_MILLICORES // 1000}' cores, "
                           f"such as '500m' or '2', got {data['cpu']!r}.",
                           fields={"cpu": [f"Use millicores ('500m') or cores ('2'), at most "
                                           f"{MAX_CPU_MILLICORES // 1000} cores."]})
    if not MEMORY_RE.match(memory) or not 0 < memory_bytes(memory) <= MAX_MEMORY_BYTES:
        raise InvalidInput(f"memory must be a quantity from 1 byte to 16Ti, such as '512Mi' or '2Gi', got "
                           f"{data['memory']!r}.", fields={"memory": ["Use a quantity such as '512Mi' or '2Gi', at "
                                                                      "most 16Ti."]})
    gpu_count = _int(data["gpu_count"], "gpu_count", minimum=0, maximum=16)
    gpu_type = str(data["gpu_type"] or "").strip()
    if gpu_count and not gpu_type:
        raise InvalidInput("gpu_type is required when gpu_count is above 0 (for example 'a100-80gb').",
                           fields={"gpu_type": ["Required when gpu_count > 0."]})
    replicas = _int(data["replicas"], "replicas", minimum=1, maximum=100)
    autoscaling = data["autoscaling"]
    if autoscaling:
        if not isinstance(autoscaling, dict) or set(autoscaling) - {"min", "max", "target_cpu"}:
            raise InvalidInput("autoscaling must be {min, max, target_cpu}.",
                               fields={"autoscaling": ["Expected {min, max, target_cpu}."]})
        low = _int(autoscaling.get("min", replicas), "autoscaling.min", minimum=1, maximum=100)
        high = _int(autoscaling.get("max", max(low, replicas)), "autoscaling.max", minimum=1, maximum=100)
        target = _int(autoscaling.get("target_cpu", 70), "autoscaling.target_cpu", minimum=1, maximum=100)
        if low > high:
            raise InvalidInput(f"autoscaling.min ({low}) must not exceed autoscaling.max ({high}).",
                               fields={"autoscaling": ["min must not exceed max."]})
        autoscaling = {"min": low, "max": high, "target_cpu": target}
    return {"cpu": cpu, "memory": memory, "gpu_type": gpu_type if gpu_count else "", "gpu_count": gpu_count,
            "replicas": replicas, "autoscaling": autoscaling or None}


def validate_strategy(data: dict | None, *, revision_numbers: set[int] | None = None) -> dict:
    """Normalise a strategy. `revision_numbers` are the deployment's existing revisions (for A/B/n)."""
    data = dict(data or {"kind": StrategyKind.ROLLING})
    kind = data.pop("kind", StrategyKind.ROLLING)
    if kind not in StrategyKind.values:
        raise InvalidInput(f"Unknown strategy {kind!r}; choose one of {', '.join(StrategyKind.values)}.",
                           fields={"strategy": [f"Unknown kind {kind!r}."]})
    allowed = {
        StrategyKind.ROLLING: set(), StrategyKind.CANARY: {"steps"}, StrategyKind.BLUE_GREEN: {"auto_switch"},
        StrategyKind.SHADOW: {"percent"}, StrategyKind.AB: {"variants"},
    }[kind]
    if set(data) - allowed:
        raise InvalidInput(f"Unknown fields for a {kind} strategy: {', '.join(sorted(set(data) - allowed))}.",
                           fields={"strategy": ["Unknown fields."]})
    if kind == StrategyKind.CANARY:
        steps = data.get("steps") or []
        if not isinstance(steps, list) or not steps:
            raise InvalidInput("A canary needs steps, for example [{\"weight\": 10, \"pause\": true}, "
                               "{\"weight\": 50}, {\"weight\": 100}].", fields={"strategy": ["steps required."]})
        clean, last = [], 0
        for i, step in enumerate(steps):
            step = {"weight": step} if isinstance(step, int) and not isinstance(step, bool) else step
            if not isinstance(step, dict) or set(step) - {"weight", "pause"}:
                raise InvalidInput(f"Canary step {i + 1} must be {{weight, pause}}.", fields={"strategy": ["Bad step."]})
            weight = _int(step.get("weight"), f"canary step {i + 1} weight", minimum=1, maximum=100)
            if weight <= last:
                raise InvalidInput(f"Canary weights must increase: step {i + 1} is {weight} % after {last} %.",
                                   fields={"strategy": ["Weights must increase."]})
            clean.append({"weight": weight, "pause": _bool(step.get("pause", False), f"canary step {i + 1} pause")})
            last = weight
        if last != 100:
            raise InvalidInput(f"Canary steps must end at 100 % (the last step is {last} %); add a final "
                               f"{{\"weight\": 100}} step.", fields={"strategy": ["Steps must end at 100 %."]})
        return {"kind": kind, "steps": clean}
    if kind == StrategyKind.BLUE_GREEN:
        return {"kind": kind, "auto_switch": _bool(data.get("auto_switch", False), "auto_switch")}
    if kind == StrategyKind.SHADOW:
        return {"kind": kind, "percent": _int(data.get("percent", 10), "shadow percent", minimum=1, maximum=100)}
    if kind == StrategyKind.AB:
        variants = data.get("variants") or []
        if not isinstance(variants, list) or len(variants) < 2:
            raise InvalidInput("An A/B/n split needs at least two variants: [{\"revision\": 1, \"weight\": 50}, "
                               "{\"revision\": \"new\", \"weight\": 50}].", fields={"strategy": ["variants required."]})
        clean, seen = [], set()
        for v in variants:
            if not isinstance(v, dict) or set(v) != {"revision", "weight"}:
                raise InvalidInput("Each A/B/n variant is {revision, weight}.", fields={"strategy": ["Bad variant."]})
            rev = v["revision"]
            if rev != "new":
                rev = _int(rev, "variant revision", minimum=1, maximum=10**6)
                if revision_numbers is not None and rev not in revision_numbers:
                    raise InvalidInput(f"Revision {rev} does not exist in this deployment.",
                                       fields={"strategy": [f"Unknown revision {rev}."]})
            if rev in seen:
                raise InvalidInput(f"Revision {rev} appears twice in the split.", fields={"strategy": ["Duplicate."]})
            seen.add(rev)
            clean.append({"revision": rev, "weight": _int(v["weight"], "variant weight", minimum=0, maximum=100)})
        if "new" not in seen:
            raise InvalidInput("One A/B/n variant must be the new revision ({\"revision\": \"new\", ...}).",
                               fields={"strategy": ["Missing the new revision."]})
        if sum(v["weight"] for v in clean) != 100:
            raise InvalidInput(f"A/B/n weights must add up to 100, they add up to {sum(v['weight'] for v in clean)}.",
                               fields={"strategy": ["Weights must add up to 100."]})
        return {"kind": kind, "variants": clean}
    return {"kind": kind}
