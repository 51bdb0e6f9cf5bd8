"""Quality gate evaluation: one result per gate, metric by metric, each saying why it passed or failed."""
import operator

from .choices import GateKind

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def format_value(value) -> str:
    """A gate's value or threshold for people: 0.9777777777777777 → "0.978", 1234.5678 → "1234.568"; not a
    float (a tag's value, None) → as it is."""
    if not isinstance(value, float):
        return "—" if value is None else str(value)
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.3g}"


def evaluate_gate(gate: dict, *, version, holder=None) -> dict:
    """gate: {kind, metric, op, threshold, name}; holder: the version holding the alias now (no-regression)."""
    kind = gate["kind"]
    metric, op, threshold, name = gate.get("metric") or "", gate.get("op") or "", gate.get("threshold"), gate.get("name") or ""
    result = {"kind": kind, "metric": metric or name, "value": None, "op": op, "threshold": threshold,
              "passed": False, "message": ""}
    if kind == GateKind.METRIC:
        value = (version.metrics or {}).get(metric)
        if value is None:
            result["message"] = f"Metric '{metric}' is missing from the run of {version}; log it to pass this gate."
            return result
        result["value"] = value
        result["passed"] = bool(OPS[op](value, threshold))
        verdict = "passes" if result["passed"] else "fails"
        result["message"] = f"{metric} = {format_value(value)} {verdict} {op} {format_value(threshold)}."
        return result
    if kind == GateKind.TAG:
        tags = {**(version.run_tags or {}), **(version.model.tags or {}), **(version.tags or {})}
        result["op"] = "present"
        result["value"] = tags.get(name)
        result["passed"] = name in tags
        result["message"] = (f"Tag '{name}' is set." if result["passed"]
                             else f"Required tag '{name}' is missing on the version and its run.")
        return result
    if kind == GateKind.ARTIFACT:
        artifacts = version.artifacts or []
        result["op"] = "present"
        result["passed"] = any(a == name or a.startswith(name.rstrip("/") + "/") for a in artifacts)
        result["value"] = name if result["passed"] else None
        result["message"] = (f"Artifact '{name}' is present." if result["passed"]
                             else f"Required artifact '{name}' is missing from the run's artifacts.")
        return result
    if kind == GateKind.NO_REGRESSION:
        value = (version.metrics or {}).get(metric)
        result["value"] = value
        if value is None:
            result["message"] = f"Metric '{metric}' is missing from the run of {version}; log it to pass this gate."
            return result
        if holder is None or holder.pk == version.pk:
            result["threshold"] = None
            result["passed"] = True
            result["message"] = f"No other version holds the alias; nothing to regress against ({metric} = {format_value(value)})."
            return result
        base = (holder.metrics or {}).get(metric)
        if base is None:
            result["passed"] = True
            result["message"] = f"{holder} (current holder) has no '{metric}' to compare with."
            return result
        tolerance = threshold or 0.0
        bound = base - tolerance if op in (">=", ">") else base + tolerance
        result["threshold"] = bound
        result["passed"] = bool(OPS[op](value, bound))
        verdict = "within" if result["passed"] else "regresses beyond"
        result["message"] = (f"{metric} = {format_value(value)} vs {format_value(base)} on {holder} (current holder): {verdict} "
                             f"the tolerated {format_value(tolerance)}.")
        return result
    result["message"] = f"Unknown gate kind '{kind}'."
    return result
