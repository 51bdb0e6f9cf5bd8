"""Run a plain Evidently 0.7 DataDriftPreset and read its per-column method, score and verdict."""

import pandas as pd

from apps.monitoring.drift import DISPLAY_NAMES, METHODS

_BY_DISPLAY = {v: k for k, v in DISPLAY_NAMES.items()}


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, *, numeric: list[str], categorical: list[str],
                    num_method=None, cat_method=None) -> dict[str, tuple[str, float, bool]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report([DataDriftPreset(num_method=num_method, cat_method=cat_method)])
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method = _BY_DISPLAY.get(config["method"], config["method"])
        threshold = config["threshold"]
        score = float(metric["value"])
        if method == "ks":
            drifted = score <= threshold
        elif METHODS[method][1] == "p_value":
            drifted = score < threshold
        else:
            drifted = score >= threshold
        out[config["column"]] = (method, score, drifted)
    return out
