"""Demo drift monitoring, seeded after the registry (and deployments, when present) demo.

- reference data: the fraud-classifier training split of the breast-cancer data (30 numeric features)
  with the model's predictions and the true label (role target);
- a monitor `fraud-classifier-drift` (daily windows) on the version the demo deployment serves (or
  the latest version when there is no deployment), linked to that deployment;
- a week of prediction logs ingested through the ingestion service (one batch per day, ~600 rows),
  drifting from mid-week: 18 features move by a third of a standard deviation and more, latency
  creeps up, errors appear; labels arrive for the first days;
- a daily run per day, so the overview shows the monitor red, the heatmap shows which features moved and
  when, and a dataset-drift alert is open. The Evidently reports of the day the drift began and of the latest
  day are queued (a worker renders them: ~12 s each, half the seed's time when it rendered them itself); the
  other days render on request.
Safe to re-run: an existing monitor is left alone (only a deployment that appeared since is linked).
"""
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

MONITOR_NAME = "fraud-classifier-drift"
MODEL_NAME = "fraud-classifier"
TEAM = "fraud"
DAYS = 7
DRIFT_FROM_DAY = 4  # mid-week
ROWS_PER_DAY = 600
REPORT_DAYS = (DRIFT_FROM_DAY, DAYS - 1)


def _report(log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


def _deployment(team):
    try:
        from apps.deployments.models import Deployment
    except ImportError:  # pragma: no cover
        return None
    return (Deployment.objects.filter(team=team, model__name=MODEL_NAME).select_related("current_revision__model_version")
            .order_by("pk").first())


def _data():
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True).frame  # bundled with scikit-learn, no download
    train, test = train_test_split(frame, test_size=0.25, random_state=42, stratify=frame["target"])
    features = [c for c in frame.columns if c != "target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=42))
    model.fit(train[features], train["target"])
    return frame, train, features, model, np


def seed_monitoring(*, log: Callable[[str], None]) -> None:
    from apps.registry.models import ModelVersion
    from apps.teams.models import Team

    from . import services
    from .models import Monitor

    team = Team.objects.filter(slug=TEAM).first()
    User = get_user_model()
    dave = User.objects.filter(username="dave").first()
    if team is None or dave is None:
        log("  skipped  monitoring demo (no fraud team / dave)")
        return
    deployment = _deployment(team)
    existing = Monitor.objects.filter(team=team, name=MONITOR_NAME).first()
    if existing:
        _report(log, False, f"monitor {MONITOR_NAME}")
        if deployment and existing.deployment_id is None:
            services.monitor_update(actor=dave, monitor=existing, deployment=deployment)
            log(f"  linked   monitor {MONITOR_NAME} to deployment {deployment.name}")
        return
    if deployment and deployment.current_revision:
        version = deployment.current_revision.model_version
    else:
        version = ModelVersion.objects.filter(model__name=MODEL_NAME).order_by("-version").first()
    if version is None:
        log(f"  skipped  monitoring demo ({MODEL_NAME} not synced)")
        return

    frame, train, features, model, np = _data()
    reference = train[features].copy()
    reference["prediction"] = model.predict(train[features]).astype(str)
    reference["target"] = train["target"].astype(str)
    schema = ([{"name": c, "kind": "numeric", "role": "feature"} for c in features]
              + [{"name": "prediction", "kind": "categorical", "role": "prediction"},
                 {"name": "target", "kind": "categorical", "role": "target"}])
    ref = services.reference_from_rows(actor=dave, model_version=version, name="training split (breast cancer)",
                                       frame=reference, schema=schema)
    _report(log, True, f"reference data for {version} ({len(reference)} rows)")
    monitor = services.monitor_create(actor=dave, team=team, name=MONITOR_NAME, model_version=version, reference=ref,
                                      deployment=deployment, window="daily", drift_share=0.5, min_rows=100)
    _report(log, True, f"monitor {MONITOR_NAME} on {version}"
                       + (f", deployment {deployment.name}" if deployment else " (no deployment to link yet)"))

    rng = np.random.default_rng(2026)
    stds = train[features].std()
    moving = features[:18]
    end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    labels = []
    for day in range(DAYS):
        day_start = start + timedelta(days=day)
        rows_idx = rng.integers(0, len(frame), ROWS_PER_DAY)
        sample = frame.iloc[rows_idx].reset_index(drop=True)
        x = sample[features].copy()
        drifting = day >= DRIFT_FROM_DAY
        if drifting:
            strength = 0.35 + 0.25 * (day - DRIFT_FROM_DAY)
            for col in moving:
                x[col] = x[col] + strength * stds[col] * (1 + rng.normal(0, 0.1, len(x)))
        predictions = model.predict(x)
        offsets = np.sort(rng.uniform(0, 86_400, len(x)))
        latency = rng.lognormal(np.log(14 if not drifting else 19), 0.35, len(x))
        errors = rng.random(len(x)) < (0.004 if not drifting else 0.02)
        rows = []
        for i in range(len(x)):
            rid = f"demo-{day_start:%Y%m%d}-{i}"
            rows.append({
                "timestamp": (day_start + timedelta(seconds=float(offsets[i]))).isoformat(),
                "request_id": rid,
                "features": {c: round(float(x.iat[i, k]), 6) for k, c in enumerate(features)},
                "prediction": str(int(predictions[i])),
                "score": None,
                "latency_ms": round(float(latency[i]), 3),
                "error": "upstream timeout" if errors[i] else None,
            })
            if day < DAYS - 1:  # ground truth lags by a day
                labels.append({"request_id": rid, "label": str(int(sample["target"].iat[i]))})
        batch, _ = services.predictions_ingest(actor=dave, model_version=version, batch_id=f"demo-{day_start:%Y-%m-%d}",
                                               rows=rows, source="json", deployment=deployment)
    _report(log, True, f"{DAYS} days of prediction logs ({DAYS * ROWS_PER_DAY} rows), drifting from day {DRIFT_FROM_DAY + 1}")
    services.labels_ingest(actor=dave, model_version=version, labels=labels)
    _report(log, True, f"{len(labels)} ground-truth labels")

    for day in range(DAYS):
        window_start = start + timedelta(days=day)
        run = services.monitor_run_request(actor=None, monitor=monitor, window_start=window_start,
                                           window_end=window_start + timedelta(days=1), trigger="schedule")
        run = services.monitor_run_execute(run_id=run.pk, report=False)
        if day in REPORT_DAYS:
            services.run_full_report_request(actor=dave, run=run)
    monitor.refresh_from_db()
    _report(log, True, f"{DAYS} daily drift runs; monitor state {monitor.state}, "
                       f"{monitor.alerts.exclude(status='resolved').count()} open alert(s)")
