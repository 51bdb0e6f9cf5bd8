"""Gate evaluation rule by rule, and the public selectors other apps call."""
import pytest

from apps.registry import selectors
from apps.registry.gates import evaluate_gate
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy


@pytest.fixture
def version(team):
    return ModelVersionFactory(model=RegisteredModelFactory(team=team),
                               metrics={"accuracy": 0.92, "latency_p95_ms": 40.0},
                               tags={"model_card": "yes"}, artifacts=["model_card.md", "plots/roc.png"])


@pytest.mark.parametrize(("op", "threshold", "passed"), [
    (">=", 0.92, True), (">", 0.92, False), ("<=", 0.91, False), ("<", 0.95, True)])
def test_metric_ops(version, op, threshold, passed):
    result = evaluate_gate({"kind": "metric", "metric": "accuracy", "op": op, "threshold": threshold}, version=version)
    assert result["passed"] is passed and result["value"] == 0.92 and result["op"] == op


def test_missing_metric_names_it(version):
    result = evaluate_gate({"kind": "metric", "metric": "fairness_gap", "op": "<=", "threshold": 0.05}, version=version)
    assert not result["passed"] and "Metric 'fairness_gap' is missing" in result["message"]


def test_required_tag_and_artifact(version):
    assert evaluate_gate({"kind": "tag", "name": "model_card"}, version=version)["passed"]
    assert not evaluate_gate({"kind": "tag", "name": "owner"}, version=version)["passed"]
    assert evaluate_gate({"kind": "artifact", "name": "plots"}, version=version)["passed"]
    missing = evaluate_gate({"kind": "artifact", "name": "README.md"}, version=version)
    assert not missing["passed"] and "README.md" in missing["message"]


def test_no_regression_lower_is_better(version, team):
    holder = ModelVersionFactory(model=version.model, metrics={"latency_p95_ms": 35.0})
    gate = {"kind": "no_regression", "metric": "latency_p95_ms", "op": "<=", "threshold": 4.0}
    result = evaluate_gate(gate, version=version, holder=holder)
    assert not result["passed"] and result["threshold"] == 39.0
    assert evaluate_gate({**gate, "threshold": 5.0}, version=version, holder=holder)["passed"]


def test_public_selectors(version, team, people, other_team):
    assert selectors.version_approved_for(version=version, environment="staging")  # no policy: nothing to approve
    assert not selectors.version_approved_for(version=version, environment="production")  # protected
    assert selectors.gate_results(version=version, environment="production") == []
    policy(team, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9}])
    assert not selectors.version_approved_for(version=version, environment="production")
    results = selectors.gate_results(version=version, environment="production")
    assert [set(r) >= {"metric", "value", "op", "threshold", "passed", "message"} for r in results] == [True]
    assert selectors.model_version_get(user=people["vera"], version_id=version.pk) == version
    assert list(selectors.model_version_list(user=people["vera"], filters={"team": team.slug})) == [version]
    from apps.core.errors import NotFound
    from tests.factories import member
    with pytest.raises(NotFound):
        selectors.model_version_get(user=member(other_team, "team_admin"), version_id=version.pk)
