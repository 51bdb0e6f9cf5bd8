"""Every write of the monitoring app, one module per concern; the names are re-exported here so callers
import `apps.monitoring.services` as before. Patch a name in the submodule that looks it up, not here."""
from __future__ import annotations

from ._shared import RESERVED, PayloadTooLarge, _check_size
from .references import (
    read_table, reference_upload, reference_from_rows, reference_from_mlflow, reference_schema_update)
from .monitors import RETRAIN_JOB_KEYS, MONITOR_FIELDS, monitor_create, monitor_update, monitor_set_auto_rollback
from .runs import (
    RUN_KIND, WINDOW_LENGTH, last_complete_window, monitor_run_request, run_performance_refresh,
    monitor_run_execute, monitor_run_retry)
from .reports import REPORT_KIND, run_full_report_request
from .alerts import alert_acknowledge, alert_resolve, alert_rollback, monitor_rollback, alert_retrain
from .ingestion import validate_rows, frame_to_rows, predictions_ingest, labels_ingest
