from django.db import migrations

# Samples arrive roughly in time order from many nodes at once: a B-tree on ts takes interleaved inserts
# all over its right edge (page splits, random writes once it outgrows the cache); a BRIN index costs
# almost nothing to maintain and is what range scans over a month's partition need.
SQL = """
DROP INDEX IF EXISTS costs_gpusample_ts_idx;
CREATE INDEX costs_gpusample_ts_brin ON costs_gpusample USING brin (ts) WITH (pages_per_range = 32);
DROP INDEX IF EXISTS costs_gpuprocess_ts_idx;
CREATE INDEX costs_gpuprocess_ts_brin ON costs_gpuprocess USING brin (ts) WITH (pages_per_range = 32);
"""
REVERSE = """
DROP INDEX IF EXISTS costs_gpusample_ts_brin;
CREATE INDEX costs_gpusample_ts_idx ON costs_gpusample (ts);
DROP INDEX IF EXISTS costs_gpuprocess_ts_brin;
CREATE INDEX costs_gpuprocess_ts_idx ON costs_gpuprocess (ts);
"""


class Migration(migrations.Migration):
    dependencies = [("costs", "0004_gpu_devices_and_process_samples")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
