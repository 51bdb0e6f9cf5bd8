from django.db import migrations

# Raw NVML samples: declaratively partitioned by month. Partitions are created on demand by the
# ingest path (apps.costs.ingest.ensure_partitions), so there is no monthly maintenance job; a
# month's data is dropped by detaching/dropping its partition. No Django model: rows are written
# with COPY and read only by the rollup job.
CREATE = """
CREATE TABLE costs_gpusample (
    ts timestamptz NOT NULL,
    cluster_id bigint NOT NULL,
    node text NOT NULL,
    gpu_index smallint NOT NULL,
    gpu_uuid text NOT NULL DEFAULT '',
    gpu_name text NOT NULL DEFAULT '',
    util_gpu real NOT NULL,
    mem_used_mb real NOT NULL,
    mem_total_mb real NOT NULL,
    power_w real NOT NULL DEFAULT 0,
    processes jsonb,
    batch_id uuid NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX costs_gpusample_ts_idx ON costs_gpusample (ts);
"""


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, "DROP TABLE IF EXISTS costs_gpusample CASCADE;")]
