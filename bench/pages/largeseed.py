"""The large seed of the page benchmark, written straight into PostgreSQL (INSERT … SELECT generate_series).

On top of the demo seed (run.py copies the demo database first): 1,000 registered models × 100 versions, 1,000
deployments (one healthy revision each, serving its model's newest version, with a 1-GPU allocation), 10M NVML
samples of 500 GPUs over the last 30 days (then the cost rollup of those days, as the scheduled rollup would have
built it) and 10M prediction log rows of the deployments over the same days (the table's columns; features
live in the columnar store since issue 15 and no page reads them, so none are written). Half of every kind belongs to the
demo team `fraud` (the member the bench signs in as sees them); the rest is spread over `search` and 8 bench
teams. Runs in run.py's child process on the large database, with Django set up.
"""
import time
from datetime import timedelta

MODELS = 1_000
VERSIONS_PER_MODEL = 100
SAMPLE_GPUS = 500
GPUS_PER_NODE = 8
DAYS = 30
BENCH_TEAMS = 8
SAMPLE_BATCH = "00000000-0000-4000-8000-00000000b0b0"  # one synthetic batch id for every bench sample


def _literal_defaults(model, overrides: dict[str, str]) -> tuple[list[str], list[str], list]:
    """Columns, SQL expressions and parameters for one row of `model`: `overrides` (SQL without parameters) where
    given, else the field's Django default, so rows look like ones the ORM wrote."""
    from django.db import connection
    from django.db.models import AutoField, BigAutoField

    columns, exprs, params = [], [], []
    for field in model._meta.concrete_fields:
        if isinstance(field, (AutoField, BigAutoField)):
            continue
        columns.append(f'"{field.column}"')
        if field.column in overrides:
            exprs.append(overrides[field.column])
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            exprs.append("now()")
        elif field.has_default() or (field.empty_strings_allowed and not field.null):  # "" like the ORM
            exprs.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
        elif field.null:
            exprs.append("NULL")
        else:
            raise ValueError(f"{model.__name__}.{field.name} needs a value")
    return columns, exprs, params


def insert_select(model, overrides: dict[str, str], source: str, source_params=()) -> int:
    from django.db import connection

    columns, exprs, params = _literal_defaults(model, overrides)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(exprs)} "
                       f"FROM {source}", [*params, *source_params])
        return cursor.rowcount


def _timed(label: str, timings: dict):
    class Timer:
        def __enter__(self):
            self.started = time.perf_counter()

        def __exit__(self, *exc):
            timings[label] = time.perf_counter() - self.started
            print(f"  {label}: {timings[label]:.1f} s", flush=True)
    return Timer()


def generate(*, predictions: int = 10_000_000, samples: int = 10_000_000) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.costs.ingest import ensure_partitions as ensure_sample_partitions
    from apps.costs.models import GpuAllocation, GpuDevice, GpuType
    from apps.costs.rollup import floor_hour, rollup_window
    from apps.deployments.models import Cluster, Deployment, DeploymentRevision
    from apps.monitoring import logstore
    from apps.registry.models import Environment, ModelVersion, RegisteredModel
    from apps.teams.models import Team

    timings: dict[str, float] = {}
    now = timezone.now()
    start = floor_hour(now - timedelta(days=DAYS))
    fraud = Team.objects.get(slug="fraud")
    others = [Team.objects.get(slug="search").pk] + [
        Team.objects.get_or_create(slug=f"bench-t{i}", defaults={"name": f"Bench team {i}"})[0].pk
        for i in range(BENCH_TEAMS)]
    # Model i (1-based) belongs to fraud when even, else to one of the others: everything derived follows it.
    team_of = f"CASE WHEN mod(i, 2) = 0 THEN {fraud.pk} ELSE (ARRAY{others})[1 + mod(i / 2, {len(others)})] END"
    cluster = Cluster.objects.get(name="local")
    environment = Environment.objects.order_by("-rank").first()
    gpu_type = GpuType.objects.get(cluster=cluster, name="A100-80GB")

    with transaction.atomic(), _timed(f"{MODELS:,} models, {MODELS * VERSIONS_PER_MODEL:,} versions", timings):
        insert_select(RegisteredModel, {
            "team_id": team_of, "name": "'bench-model-' || lpad(i::text, 4, '0')", "team_source": "'tag'",
            "mlflow_created_at": "now() - interval '60 days'", "mlflow_updated_at": "now()"},
            "generate_series(1, %s) AS g(i)", [MODELS])
        insert_select(ModelVersion, {
            "model_id": "m.id", "version": "v", "team_id": "m.team_id", "model_name": "m.name",
            "mlflow_status": "'READY'", "source": "'models:/' || m.name || '/' || v",
            "metrics": "jsonb_build_object('accuracy', round((0.8 + random() * 0.2)::numeric, 4), "
                       "'f1', round((0.7 + random() * 0.3)::numeric, 4))",
            "mlflow_created_at": "now() - make_interval(days => 60) + make_interval(mins => v * 10)",
            "mlflow_updated_at": "now()"},
            "registry_registeredmodel m CROSS JOIN generate_series(1, %s) AS v WHERE m.name LIKE 'bench-model-%%'",
            [VERSIONS_PER_MODEL])

    with transaction.atomic(), _timed(f"{MODELS:,} deployments, revisions, GPU allocations", timings):
        insert_select(Deployment, {
            "team_id": "m.team_id", "name": "'bench-' || substr(m.name, 13)", "model_id": "m.id",
            "environment_id": str(environment.pk), "cluster_id": str(cluster.pk), "namespace": "'bench'",
            "status": "'healthy'", "observed_generation": "1"},
            "registry_registeredmodel m WHERE m.name LIKE 'bench-model-%%'")
        insert_select(DeploymentRevision, {
            "deployment_id": "d.id", "number": "1", "model_version_id": "v.id", "status": "'ready'",
            "actor_label": "'bench'", "ready_at": "now() - interval '30 days'"},
            f"deployments_deployment d JOIN registry_modelversion v ON v.model_id = d.model_id "
            f"AND v.version = {VERSIONS_PER_MODEL} WHERE d.name LIKE 'bench-%%'")
        with connection.cursor() as cursor:
            cursor.execute("UPDATE deployments_deployment d SET current_revision_id = r.id, stable_revision_id = r.id, "
                           "traffic = jsonb_build_object(r.id::text, 100) FROM deployments_deploymentrevision r "
                           "WHERE r.deployment_id = d.id AND d.name LIKE 'bench-%%'")
        # Deployment k serves on GPU (k mod 500): node bench-n<k/8>, index k mod 8, for the whole 30 days.
        insert_select(GpuAllocation, {
            "team_id": "d.team_id", "cluster_id": str(cluster.pk), "gpu_type_id": str(gpu_type.pk),
            "gpu_count": "1", "model_version_id": "r.model_version_id", "deployment_id": "d.id",
            "revision_id": "r.id", "node": f"'bench-n' || lpad((mod(k, {SAMPLE_GPUS}) / {GPUS_PER_NODE})::text, 3, '0')",
            "gpu_indexes": f"ARRAY[mod(k, {GPUS_PER_NODE})::smallint]",
            "started_at": f"'{start.isoformat()}'::timestamptz"},
            "(SELECT d.*, row_number() OVER (ORDER BY d.id) - 1 AS k FROM deployments_deployment d "
            "WHERE d.name LIKE 'bench-%%') d JOIN deployments_deploymentrevision r ON r.id = d.current_revision_id")

    interval = DAYS * 86400 / (samples / SAMPLE_GPUS)
    with _timed(f"{samples:,} GPU samples ({SAMPLE_GPUS} GPUs every {interval:.0f} s)", timings):
        ensure_sample_partitions(start, now)
        with transaction.atomic():
            insert_select(GpuDevice, {
                "cluster_id": str(cluster.pk), "node": f"'bench-n' || lpad((g / {GPUS_PER_NODE})::text, 3, '0')",
                "gpu_index": f"mod(g, {GPUS_PER_NODE})", "name": "'NVIDIA A100-SXM4-80GB'", "last_seen_at": "now()"},
                "generate_series(0, %s) AS g", [SAMPLE_GPUS - 1])
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO costs_gpusample (ts, cluster_id, node, gpu_index, util_gpu, mem_used_mb, "
                    "mem_total_mb, power_w, batch_id) "
                    f"SELECT %s + make_interval(secs => s * {interval}), %s, "
                    f"'bench-n' || lpad((g / {GPUS_PER_NODE})::text, 3, '0'), mod(g, {GPUS_PER_NODE}), "
                    "(random() * 100)::real, (random() * 80000)::real, 81920, (100 + random() * 300)::real, %s "
                    "FROM generate_series(0, %s) AS s CROSS JOIN generate_series(0, %s) AS g",
                    [start, cluster.pk, SAMPLE_BATCH, samples // SAMPLE_GPUS - 1, SAMPLE_GPUS - 1])
    with _timed(f"cost rollup of the {DAYS} days", timings):
        rollup_window(start=start, end=floor_hour(now))

    per_deployment = predictions // MODELS
    with _timed(f"{predictions:,} prediction log rows", timings):
        logstore.ensure_partitions(start, now)
        step = DAYS * 86400 / per_deployment
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {logstore.TABLE} (model_version_id, deployment_id, batch_pk, ts, request_id, features, "
                "prediction, prediction_num, score, latency_ms) "
                f"SELECT r.model_version_id, d.id, 0, %s + make_interval(secs => n * {step}), '', NULL, "
                "mod(n, 2)::text, mod(n, 2), random(), 5 + random() * 20 "
                "FROM deployments_deployment d JOIN deployments_deploymentrevision r ON r.id = d.current_revision_id "
                "CROSS JOIN generate_series(0, %s) AS n WHERE d.name LIKE 'bench-%%'",
                [start, per_deployment - 1])
    # VACUUM too, not only ANALYZE: autovacuum would otherwise start on the freshly inserted 10M-row tables while
    # the pages are timed (insert-triggered, PostgreSQL 13+) and compete with them for the CPUs; a database in use
    # has long been vacuumed (and its visibility map lets index-only scans skip the heap).
    with _timed("VACUUM ANALYZE", timings), connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return timings
