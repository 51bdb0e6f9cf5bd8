"""Retention of the prediction log: whole partitions (UTC days) older than the raw retention lose their rows and
files; their summaries stay until the (longer) summary retention, so sketch-mode runs and the report page still
work on old windows. Per model version the longest retention among its monitors wins (MONITORING_RAW_RETENTION_DAYS
and MONITORING_SUMMARY_RETENTION_DAYS when a monitor leaves it empty, or the version has no monitor).
Every drop is audited (monitoring.log.drop_partition, monitoring.log.drop_summaries) and logged."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion

from .. import columnar
from ..models import Monitor, PartitionSummary, PredictionFile

logger = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def retention_days(model_version_id: int) -> tuple[int, int]:
    """(raw days, summary days) for a model version; summaries are never kept shorter than raw rows."""
    raw_default, summary_default = settings.MONITORING_RAW_RETENTION_DAYS, settings.MONITORING_SUMMARY_RETENTION_DAYS
    monitors = list(Monitor.objects.filter(model_version_id=model_version_id)
                    .values_list("raw_retention_days", "summary_retention_days"))
    raw = max((r or raw_default for r, _ in monitors), default=raw_default)
    summary = max((s or summary_default for _, s in monitors), default=summary_default)
    return raw, max(raw, summary)


def retention_apply(*, now: datetime | None = None) -> dict:
    """Drop what is past retention, for every model version with a log or summaries (the beat task)."""
    now = now or timezone.now()
    out = {"partitions": 0, "rows": 0, "summaries": 0}
    versions = set(PredictionFile.objects.values_list("model_version_id", flat=True).distinct())
    versions |= set(PartitionSummary.objects.values_list("model_version_id", flat=True).distinct())
    for version in ModelVersion.objects.filter(pk__in=versions).select_related("team"):
        raw_days, summary_days = retention_days(version.pk)
        raw_cutoff = now - timedelta(days=raw_days)
        for part in columnar.partitions(model_version_id=version.pk, start=EPOCH, end=raw_cutoff):
            if part.end > raw_cutoff:  # only whole partitions go
                continue
            with transaction.atomic():
                rows = columnar.drop_partition(model_version_id=version.pk, key=part.key)
                audit_record(actor=None, action="monitoring.log.drop_partition", target=version, team=version.team,
                             changes={"partition": [part.key, None], "rows": [rows, 0],
                                      "retention_days": [None, raw_days]})
            logger.info("Dropped a prediction log partition past retention",
                        extra={"model_version": version.pk, "partition": part.key, "rows": rows, "days": raw_days})
            out["partitions"] += 1
            out["rows"] += rows
        old = PartitionSummary.objects.filter(model_version=version, end__lte=now - timedelta(days=summary_days))
        with transaction.atomic():
            span = old.aggregate(first=Min("key"), last=Max("key"))
            count, _ = old.delete()
            if count:
                audit_record(actor=None, action="monitoring.log.drop_summaries", target=version, team=version.team,
                             changes={"summaries": [count, 0], "partitions": [f"{span['first']} – {span['last']}", None],
                                      "retention_days": [None, summary_days]})
                logger.info("Dropped partition summaries past retention",
                            extra={"model_version": version.pk, "summaries": count, "days": summary_days})
        out["summaries"] += count
    return out
