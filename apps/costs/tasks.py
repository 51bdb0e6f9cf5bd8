from celery import shared_task


@shared_task(name="costs.rollup")
def rollup_task() -> dict:
    """Beat job: queue a rollup for the runner (kind costs.rollup; none new while one is pending) and work it here
    at once: rebuild the changed window, then check budgets against the fresh numbers. A failure stays on the run
    and the runner's sweep retries it with backoff; out of attempts it needs attention (dashboard, costs page)."""
    from apps.core import runner

    from .rollup import ROLLUP_KIND, rollup_queue

    run = rollup_queue()
    outcome = runner.tick(ROLLUP_KIND, ids=[run.pk])
    run.refresh_from_db()
    return {"run": run.pk, "status": run.status, "outcome": outcome, "window_start": str(run.window_start),
            "window_end": str(run.window_end), "usage_rows": run.usage_rows}


@shared_task(name="costs.collect_pods")
def collect_pods_task() -> list[dict]:
    """Beat job: attribute GPU pods on each Kubernetes cluster that the control plane didn't start."""
    from .collector import collect_all

    return collect_all()


@shared_task(name="costs.expire_reservations")
def expire_reservations_task() -> int:
    """Beat job: GPU reservations of work that never started are released (admission also does it lazily)."""
    from .services import reservations_expire

    return reservations_expire()


@shared_task(name="costs.open_intervals_check")
def open_intervals_check_task() -> list[dict]:
    """Nightly beat job: report ledger intervals open without a running workload (apps.costs.ledger)."""
    from .ledger import open_intervals_check

    return open_intervals_check()
