"""Predictions per (model version, deployment, UTC day), kept by the database at every insert into the log.

The costs pages divide cost by predictions over whole months; counting a month of raw log rows took seconds at 10M
rows (bench/README.md → Pages), and retention deletes the rows a past month's figures need. A statement-level
trigger (its transition table holds the statement's rows) adds each INSERT's or COPY's counts, so every writer of
the log — ingest, the demo seed, benchmarks, imports — counts without remembering to, in the writer's transaction.
Rows deleted later (retention, compaction of old days) keep their counts: they were served.
"""
from django.db import migrations

CREATE = """
CREATE TABLE monitoring_prediction_day_count (
    model_version_id bigint NOT NULL,
    deployment_id bigint NULL,
    day date NOT NULL,
    predictions bigint NOT NULL,
    CONSTRAINT monitoring_prediction_day_count_key UNIQUE NULLS NOT DISTINCT (model_version_id, deployment_id, day)
);
CREATE FUNCTION monitoring_count_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so two writers touching the same counts lock them in one order.
    INSERT INTO monitoring_prediction_day_count AS c (model_version_id, deployment_id, day, predictions)
    SELECT model_version_id, deployment_id, (ts AT TIME ZONE 'UTC')::date, count(*)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (model_version_id, deployment_id, day) DO UPDATE SET predictions = c.predictions + EXCLUDED.predictions;
    RETURN NULL;
END $$;
-- Inserts of the previous release's pods wait for the count of what is there (SHARE blocks writes, not reads).
LOCK TABLE monitoring_prediction_log IN SHARE MODE;
CREATE TRIGGER monitoring_prediction_log_count AFTER INSERT ON monitoring_prediction_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION monitoring_count_predictions();
INSERT INTO monitoring_prediction_day_count (model_version_id, deployment_id, day, predictions)
SELECT model_version_id, deployment_id, (ts AT TIME ZONE 'UTC')::date, count(*) FROM monitoring_prediction_log
GROUP BY 1, 2, 3;
"""

DROP = """
DROP TRIGGER IF EXISTS monitoring_prediction_log_count ON monitoring_prediction_log;
DROP FUNCTION IF EXISTS monitoring_count_predictions();
DROP TABLE IF EXISTS monitoring_prediction_day_count;
"""


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0008_partition_summaries")]

    operations = [migrations.RunSQL(CREATE, DROP)]
