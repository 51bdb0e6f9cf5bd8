from celery import shared_task


@shared_task(name="costs.rollup")
def rollup_task() -> dict:
    """Beat job: rebuild the changed rollup window, then check budgets against the fresh numbers.

    Not fed by the outbox (nothing to deduplicate): each run is idempotent by construction, and a
    skipped run is caught up by the next, which starts from the last finished one.
    """
    from .budgets import budgets_check
    from .rollup import rollup_incremental

    result = rollup_incremental()
    alerts = budgets_check()
    return {"window_start": str(result["window_start"]), "window_end": str(result["window_end"]),
            "usage_rows": result["usage_rows"], "alerts": len(alerts)}


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
