"""gunicorn's settings file, read from the working directory: `make run`, docker-compose, the image and the Helm
chart all start gunicorn in the repository root (/app)."""


def on_starting(server):
    """Before the master forks its workers, import mlflow: a cold import takes seconds (4–6 s on a loaded
    machine), and without this the first MLflow webhook delivery each fresh worker handled waited for it
    (9.5 s measured, bench/README.md). Workers forked afterwards, or respawned later, start with it loaded."""
    from apps.registry.mlflow_api import preload

    preload()
