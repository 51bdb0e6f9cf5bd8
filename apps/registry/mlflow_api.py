"""The one place the registry talks to MLflow (imported lazily: mlflow takes over a second to import)."""
import json
import os

from django.conf import settings

# The control plane retries through the outbox and the sync schedule; MLflow's own retry loop (7 tries with
# exponential backoff by default) would hold a worker for minutes when the server is down.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

PAGE = 100  # MLflow loads each listed model's latest versions: big pages time out


def preload() -> None:
    """Import the mlflow client ahead of the first request that needs it (gunicorn.conf.py: the web master,
    before it forks its workers, so MLflow's webhook deliveries never wait for the import)."""
    import mlflow.exceptions  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401


def client():
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI)


def iter_registered_models(c):
    token = None
    while True:
        page = c.search_registered_models(max_results=PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def iter_registered_models_newest_first(c, page: int = 20):
    """Registered models by `last_updated_timestamp`, newest first: the watermark pass stops reading at its mark."""
    token = None
    while True:
        batch = c.search_registered_models(max_results=page, order_by=["last_updated_timestamp DESC"],
                                           page_token=token)
        yield from batch
        token = batch.token
        if not token:
            return


def registered_model_or_none(c, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def iter_model_versions(c, name: str):
    token = None
    escaped = name.replace("'", "\\'")
    while True:
        page = c.search_model_versions(filter_string=f"name='{escaped}'", max_results=PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def iter_all_model_versions(c, page: int = 10_000):
    """Every version of every model, a page at a time (one call per 10,000 versions instead of one per model)."""
    token = None
    while True:
        batch = c.search_model_versions(max_results=page, page_token=token)
        yield from batch
        token = batch.token
        if not token:
            return


def run_details(c, run_id: str) -> dict:
    """Metrics, params, tags, dataset inputs and top-level artifacts of the run that produced a version."""
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException

    try:
        run = c.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    datasets = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags or []}
        source = item.dataset.source
        try:
            parsed = json.loads(source)
            # Code-defined sources (pandas frames) describe the script that built them.
            source = (parsed.get("uri") or parsed.get("url") or parsed.get("path")
                      or (parsed.get("tags") or {}).get("mlflow.source.name") or source)
        except (TypeError, ValueError, AttributeError):
            pass
        datasets.append({"name": item.dataset.name, "digest": item.dataset.digest,
                         "source_type": item.dataset.source_type, "source": source,
                         "context": tags.get("mlflow.data.context", "")})
    try:
        artifacts = [a.path for a in c.list_artifacts(run_id)]
    except Exception:  # an artifact store we can't list must not block the sync of the metadata
        artifacts = []
    return {"metrics": dict(run.data.metrics), "params": dict(run.data.params), "tags": dict(run.data.tags),
            "datasets": datasets, "artifacts": artifacts, "artifact_uri": run.info.artifact_uri}


def model_details(c, mv) -> dict:
    """Artifact location and signature of the model files behind a version."""
    artifact_uri, signature = "", None
    model_id = getattr(mv, "model_id", None)
    if model_id:
        try:
            logged = c.get_logged_model(model_id)
            artifact_uri = logged.artifact_location or ""
        except Exception:
            artifact_uri = ""
    if not artifact_uri:
        try:
            artifact_uri = c.get_model_version_download_uri(mv.name, mv.version)
        except Exception:
            artifact_uri = mv.source or ""
    try:
        import tempfile

        import mlflow.artifacts
        import yaml

        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"{artifact_uri.rstrip('/')}/MLmodel",
                                                       dst_path=folder, tracking_uri=settings.MLFLOW_TRACKING_URI)
            with open(path) as handle:
                mlmodel = yaml.safe_load(handle)
        raw = (mlmodel or {}).get("signature")
        if raw:
            signature = {k: json.loads(v) if isinstance(v, str) else v for k, v in raw.items()}
    except Exception:
        signature = None
    return {"artifact_uri": artifact_uri, "signature": signature}


def set_alias(*, name: str, alias: str, version: int, tags: dict) -> None:
    """Point `alias` at `version`, unless MLflow already has it there: a publish retried after MLflow took the
    alias but the answer was lost (5xx after the write, a timeout, a killed worker) sets it once, not again."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        current = c.get_model_version_by_alias(name, alias).version
    except MlflowException as exc:
        # No such alias (MLflow answers INVALID_PARAMETER_VALUE) or model: setting it says which, if either.
        if exc.error_code not in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            raise
        current = None
    if current != str(version):
        c.set_registered_model_alias(name, alias, str(version))
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, value)


def delete_alias(*, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client().delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # already gone: the goal is reached
            raise


def webhook_ensure(*, name: str, url: str, events: list[str], secret: str) -> tuple[str, str]:
    """Make MLflow hold exactly one active webhook called `name` with this URL, events and secret.

    Idempotent: an existing one is updated (MLflow never returns a secret, so it is always re-sent), extra
    copies left by a race are deleted. Returns (webhook id, "created" or "updated").
    """
    c = client()
    mine, token = [], None
    while True:
        page = c.list_webhooks(max_results=100, page_token=token)
        mine += [hook for hook in page if hook.name == name]
        token = page.token
        if not token:
            break
    if not mine:
        return c.create_webhook(name=name, url=url, events=events, secret=secret).webhook_id, "created"
    keep, *extra = sorted(mine, key=lambda hook: hook.creation_timestamp or 0)
    for hook in extra:
        c.delete_webhook(hook.webhook_id)
    c.update_webhook(keep.webhook_id, url=url, events=events, secret=secret, status="ACTIVE")
    return keep.webhook_id, "updated"
