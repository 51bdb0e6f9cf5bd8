from .env import env, env_int

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0", required_in_production=True)

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The outbox row is the durable copy of a message; publishing must fail fast when Redis is down
# so the request never hangs, and the sweep retries later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "visibility_timeout": 3600,
    # Publishing gives up after one quick retry instead of kombu's default of several seconds.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Two queues, one worker pool each (README → Architecture → Queues): a rollback never waits behind a
# drift run. Every task of ours is listed here by name; tests/outbox/test_queues.py fails on one that is
# not, because a message on a queue no worker consumes would wait forever.
CONTROL_QUEUE = "control"
BULK_QUEUE = "bulk"
CELERY_TASK_ROUTES = {
    # Control: short, latency-sensitive steps a person is waiting for.
    "deployments.dispatch_job": {"queue": CONTROL_QUEUE},
    "registry.publish_promotion": {"queue": CONTROL_QUEUE},
    "teams.deliver_webhook": {"queue": CONTROL_QUEUE},
    "outbox.sweep": {"queue": CONTROL_QUEUE},  # publishes deferred hints; must not queue behind bulk
    # The runner (apps/core/runner.py): a tick is sent to its work kind's queue explicitly; control is the default
    # (rollouts, rollbacks, canary promotions, aborts: kind deployments.rollout).
    "runner.tick": {"queue": CONTROL_QUEUE},
    "runner.sweep": {"queue": CONTROL_QUEUE},
    # Bulk: long or periodic work over many rows.
    "deployments.reconcile": {"queue": BULK_QUEUE},  # the fallback sweep over every deployment
    "monitoring.run_monitor": {"queue": BULK_QUEUE},
    "monitoring.schedule_monitor": {"queue": BULK_QUEUE},
    "monitoring.render_report": {"queue": BULK_QUEUE},
    "monitoring.summarize_partition": {"queue": BULK_QUEUE},  # a sketch-mode run's fan-out, one per partition
    "monitoring.summarize_log": {"queue": BULK_QUEUE},  # an ingest batch's files merged into their day summaries
    "monitoring.retention": {"queue": BULK_QUEUE},
    "monitoring.log_compact": {"queue": BULK_QUEUE},
    "registry.sync": {"queue": BULK_QUEUE},
    "registry.sync_scheduled": {"queue": BULK_QUEUE},
    "registry.expire_requests": {"queue": BULK_QUEUE},
    "costs.rollup": {"queue": BULK_QUEUE},
    "costs.collect_pods": {"queue": BULK_QUEUE},
    "costs.expire_reservations": {"queue": BULK_QUEUE},
    "costs.open_intervals_check": {"queue": BULK_QUEUE},
    "audit.checkpoint": {"queue": BULK_QUEUE},
    "core.purge_idempotency_keys": {"queue": BULK_QUEUE},
}

OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 12)
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 15)

CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "outbox.sweep", "schedule": float(OUTBOX_SWEEP_SECONDS)},
    # The runner: tick every work kind with due rows or expired leases (wake-ups between sweeps are hints).
    "runner-sweep": {"task": "runner.sweep", "schedule": float(env_int("RUNNER_SWEEP_SECONDS", 10))},
    # Costs: rebuild the changed rollup window and check budgets (idempotent; see apps/costs/rollup.py).
    "costs-rollup": {"task": "costs.rollup", "schedule": float(env_int("COSTS_ROLLUP_SECONDS", 300))},
    "costs-collect-pods": {"task": "costs.collect_pods", "schedule": float(env_int("COSTS_COLLECT_SECONDS", 120))},
    "costs-expire-reservations": {"task": "costs.expire_reservations", "schedule": 300.0},
    # Nightly: ledger intervals still open without a running deployment revision or Job (logged and audited).
    "costs-open-intervals-check": {"task": "costs.open_intervals_check", "schedule": 86400.0},
    "registry-sync": {"task": "registry.sync_scheduled", "schedule": float(env_int("REGISTRY_SYNC_SECONDS", 300))},
    "registry-expire-requests": {"task": "registry.expire_requests", "schedule": 300.0},
    # Deployments: report drift/vanished objects, track jobs, adopt local processes (rollouts are the runner's).
    "deployments-reconcile": {"task": "deployments.reconcile",
                              "schedule": float(env_int("DEPLOYMENTS_RECONCILE_SECONDS", 30))},
    # Audit: sign a checkpoint of the chain's head when events were added since the last one.
    "audit-checkpoint": {"task": "audit.checkpoint", "schedule": float(env_int("AUDIT_CHECKPOINT_SECONDS", 300))},
    # Monitoring: drop log partitions and summaries past their retention (audited per drop).
    "monitoring-retention": {"task": "monitoring.retention", "schedule": float(env_int("MONITORING_RETENTION_SECONDS", 3600))},
    # Monitoring: one Parquet file per closed day instead of one per ingest batch; unreferenced files deleted.
    "monitoring-log-compact": {"task": "monitoring.log_compact", "schedule": float(env_int("MONITORING_COMPACT_SECONDS", 3600))},
    # API: forget Idempotency-Key answers after their 24 hours.
    "core-purge-idempotency-keys": {"task": "core.purge_idempotency_keys", "schedule": 3600.0},
}
