"""Monitoring objects for tests, built without going through permission checks."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from apps.monitoring import engine, logstore
from apps.monitoring.models import Alert, Monitor, MonitorRun, PredictionBatch, ReferenceColumn, ReferenceDataset
from apps.registry.models import ModelVersion, RegisteredModel

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def model_version(team, name: str | None = None) -> ModelVersion:
    name = name or f"{team.slug}-model"
    model, _ = RegisteredModel.objects.get_or_create(name=name, defaults={"team": team})
    version, _ = ModelVersion.objects.get_or_create(model=model, version=1, defaults={"run_id": ""})
    return version


def frame(n: int, *, drift: bool = False, seed: int = 0) -> pd.DataFrame:
    """amount, age (numeric), country, channel (categorical), prediction (label 0/1)."""
    rng = np.random.default_rng(seed)
    shift = 1.0 if drift else 0.0
    return pd.DataFrame({
        "amount": rng.lognormal(3 + shift, 1, n),
        "age": rng.normal(40 + 8 * shift, 10, n),
        "country": rng.choice(["de", "fr", "it"], n, p=[0.2, 0.3, 0.5] if drift else [0.5, 0.3, 0.2]),
        "channel": rng.choice(["web", "app"], n, p=[0.3, 0.7] if drift else [0.7, 0.3]),
        "prediction": rng.choice(["0", "1"], n, p=[0.4, 0.6] if drift else [0.8, 0.2]),
    })


def reference(team, version, data: pd.DataFrame | None = None, prediction: str | None = "prediction",
              target: str | None = None) -> ReferenceDataset:
    data = frame(1500) if data is None else data
    schema = engine.infer_schema(data, prediction=prediction, target=target)
    ref = ReferenceDataset.objects.create(team=team, model_version=version, name="ref", source="upload", schema=schema,
                                          row_count=len(data), sample_parquet=engine.sample_parquet(data))
    for col in schema:
        ReferenceColumn.objects.create(reference=ref, name=col["name"], kind=col["kind"],
                                       **engine.prepare_column(data[col["name"]], col["kind"]))
    return ref


def monitor(team, version=None, ref=None, **options) -> Monitor:
    version = version or model_version(team)
    ref = ref or reference(team, version)
    options.setdefault("min_rows", 20)
    return Monitor.objects.create(team=team, name=options.pop("name", "fraud-drift"), model_version=version,
                                  reference=ref, **options)


def logs(version, data: pd.DataFrame, *, start: datetime = T0, span: timedelta = timedelta(hours=23),
         batch_id: str | None = None, prefix: str = "r", latency: float = 20.0, error_every: int = 0) -> PredictionBatch:
    batch = PredictionBatch.objects.create(team=version.model.team, model_version=version,
                                           batch_id=batch_id or f"{prefix}-{start.isoformat()}", source="json",
                                           received=len(data), accepted=len(data))
    step = span / max(len(data), 1)
    features = [c for c in data.columns if c != "prediction"]
    rows = []
    for i, rec in enumerate(data.to_dict("records")):
        pred = rec.get("prediction")
        feats = {c: (None if isinstance(rec[c], float) and np.isnan(rec[c]) else rec[c]) for c in features}
        rows.append((version.pk, None, batch.pk, start + i * step, f"{prefix}-{i}", feats,
                     None if pred is None else str(pred), None, None, latency + (i % 10),
                     "timeout" if error_every and i % error_every == 0 else None))
    logstore.ensure_partitions(start, start + span)
    logstore.copy_rows(rows)
    return batch


def run(mon: Monitor, **fields) -> MonitorRun:
    fields.setdefault("window_start", T0)
    fields.setdefault("window_end", T0 + timedelta(days=1))
    fields.setdefault("status", "succeeded")
    return MonitorRun.objects.create(monitor=mon, **fields)


def alert(mon: Monitor, **fields) -> Alert:
    fields.setdefault("kind", "dataset_drift")
    fields.setdefault("title", "Dataset drift")
    return Alert.objects.create(team=mon.team, monitor=mon, **fields)
