import os
from pathlib import Path

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

LIVENESS_INTERVAL_SECONDS = 10


class LivenessFile(bootsteps.StartStopStep):
    """Touches CELERY_WORKER_LIVENESS_FILE every 10 s from the worker's own timer, for a Kubernetes exec
    liveness probe (deploy/helm: stale for 90 s → the pod is restarted). The timer runs in the worker's
    event loop, so a wedged loop stops the touches; with prefork, tasks run in child processes and a long
    task doesn't. A dead worker's leased rows are reclaimed by the runner either way; this restarts it."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        path = os.environ.get("CELERY_WORKER_LIVENESS_FILE", "")
        self.path = Path(path) if path else None
        self.tref = None

    def start(self, worker):
        if self.path is not None:
            self.path.touch()
            self.tref = worker.timer.call_repeatedly(LIVENESS_INTERVAL_SECONDS, self.path.touch, priority=10)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


app.steps["worker"].add(LivenessFile)
