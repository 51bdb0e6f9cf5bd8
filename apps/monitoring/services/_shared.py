"""Pieces every monitoring service uses: the reserved column names, the upload size limit, a version's team."""
from __future__ import annotations

from django.conf import settings

from apps.core.errors import Conflict, DomainError

RESERVED = {"timestamp", "request_id", "prediction", "score", "latency_ms", "error", "features"}


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


def _team_of(model_version):
    team = model_version.model.team
    if team is None:
        raise Conflict(f"{model_version} has no team yet; a team admin must assign the model to a team first.")
    return team


def _check_size(size: int) -> None:
    limit = settings.MONITORING_MAX_UPLOAD_BYTES
    if size > limit:
        raise PayloadTooLarge(f"The upload is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB. Split it into "
                              f"smaller batches (each with its own batch_id).",
                              extra={"limit_bytes": limit})
