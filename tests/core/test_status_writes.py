"""Statuses change only through a state machine's transition (an app's transitions.py on top of
apps/audit/transitions.py, or its own compare-and-set function there): a table of allowed moves, the row and
its audit event in one transaction. Anywhere else, writing a status column is an escape hatch.

Read from the source with ast: `.update(status=...)` / `.update(**{"status": ...})` /
`.update_or_create(..., status=...)` calls, `bulk_update` calls, `.save(update_fields=[..., "status"])`,
`x.status = ...` assignments and `setattr(x, "status", ...)`. Creating a row in its
initial status is not a move and is not flagged.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATUS_FIELDS = {"status"}

# Writes outside transitions.py that remain, per module: how many, and why. The count is exact, so a new
# write fails the test, and so does one removed (lower the number, or drop the entry).
NOT_YET_TRANSITIONS = {
}


def _is_transitions_module(path: Path) -> bool:
    return path.name == "transitions.py"


def status_writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("update", "update_or_create") and any(k.arg in STATUS_FIELDS for k in node.keywords):
                found.append(f"{node.lineno}: .{node.func.attr}(status=...)")
            elif node.func.attr == "bulk_update":
                found.append(f"{node.lineno}: .bulk_update(...)")
            elif node.func.attr == "save" and any(
                    k.arg == "update_fields" and isinstance(k.value, (ast.List, ast.Tuple, ast.Set))
                    and any(isinstance(c, ast.Constant) and c.value in STATUS_FIELDS for c in k.value.elts)
                    for k in node.keywords):
                found.append(f"{node.lineno}: .save(update_fields=[..., 'status'])")
            elif node.func.attr == "update" and any(
                    k.arg is None and isinstance(k.value, ast.Dict)
                    and any(isinstance(key, ast.Constant) and key.value in STATUS_FIELDS for key in k.value.keys)
                    for k in node.keywords):
                found.append(f"{node.lineno}: .update(**{{'status': ...}})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value in STATUS_FIELDS:
            found.append(f"{node.lineno}: setattr(..., 'status', ...)")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr in STATUS_FIELDS and isinstance(part.ctx, ast.Store):
                        found.append(f"{node.lineno}: .status = ...")
    return found


def test_statuses_change_only_through_transitions():
    unexpected, stale = [], []
    for path in sorted((ROOT / "apps").rglob("*.py")):
        if "migrations" in path.parts or _is_transitions_module(path):
            continue
        name = str(path.relative_to(ROOT))
        writes = status_writes(path)
        allowed = NOT_YET_TRANSITIONS.get(name, (0, ""))[0]
        if len(writes) > allowed:
            unexpected.append(f"{name}: {writes}")
        elif len(writes) < allowed:
            stale.append(f"{name}: {len(writes)} left, NOT_YET_TRANSITIONS says {allowed}")
    assert not unexpected, ("Status written outside a transition; add the move to the state machine's table and "
                            f"go through its transition function: {unexpected}")
    assert not stale, f"Fewer direct status writes than listed, well done: lower NOT_YET_TRANSITIONS: {stale}"


# State machines whose transitions.py still writes a status itself instead of through apps/audit/transitions.py.
OWN_COMPARE_AND_SET = {
    "apps/deployments/transitions.py": (1, "deployment_transition compares and sets on lock_version too"),
    "apps/costs/transitions.py": (1, (
        "reservations_move moves a deployment's or job's reservations in bulk, inside the audited transition "
        "that causes it (filtered on the table's sources)")),
}


def test_state_machines_share_one_transition():
    """Each transitions.py is a table and thin functions on top of the shared transition()."""
    found = {}
    for path in sorted((ROOT / "apps").rglob("transitions.py")):
        name = str(path.relative_to(ROOT))
        if name != "apps/audit/transitions.py":
            found[name] = len(status_writes(path))
    expected = {name: OWN_COMPARE_AND_SET.get(name, (0, ""))[0] for name in found}
    assert found == expected, "A state machine writes its status itself: use apps.audit.transitions.transition()"


def test_the_reader_sees_every_kind_of_status_write(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("Job.objects.filter(pk=1).update(status='x', message='')\n"
                      "job.status = 'y'\n"
                      "setattr(job, 'status', 'z')\n"
                      "Job.objects.bulk_update(jobs, ['status'])\n"
                      "Job.objects.create(status='pending')\n"
                      "job.save(update_fields=['status', 'message'])\n"
                      "Job.objects.filter(pk=1).update(**{'status': 'x'})\n"
                      "run.save(update_fields=[f for f in fields if f not in ('id', 'status')])\n")
    assert sorted(int(line.split(":")[0]) for line in status_writes(sample)) == [1, 2, 3, 4, 6, 7]
