"""A classifier's integer class labels: categorical by default, and its performance is accuracy/F1."""
import pandas as pd

from apps.monitoring.engine import infer_schema
from apps.monitoring.selectors import score_text


def _kinds(frame, **roles):
    return {c["name"]: c["kind"] for c in infer_schema(frame, **roles)}


def test_integer_predictions_and_targets_are_categorical():
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "n_items": [1, 2, 3, 4], "pred": [0, 1, 1, 0],
                          "label": [0.0, 1.0, 1.0, 0.0]})
    assert _kinds(frame, prediction="pred", target="label") == {"x": "numeric", "n_items": "numeric",
                                                                "pred": "categorical", "label": "categorical"}


def test_regression_outputs_stay_numeric():
    frame = pd.DataFrame({"x": [1, 2, 3], "pred": [0.2, 1.7, 3.1], "label": [0.0, 2.0, 3.5]})
    assert _kinds(frame, prediction="pred", target="label") == {"x": "numeric", "pred": "numeric", "label": "numeric"}
    many = pd.DataFrame({"x": range(200), "pred": range(200)})  # whole numbers, but too many values for classes
    assert _kinds(many, prediction="pred")["pred"] == "numeric"


def test_scores_are_formatted_for_people():
    assert score_text(2.42e-122, "p_value") == "< 0.001"
    assert score_text(0.04567, "p_value") == "0.0457"
    assert score_text(0.123456, "distance") == "0.123"
    assert score_text(None) == "—"
