"""Reference datasets: upload, rows, an MLflow artifact, and schema edits."""
from __future__ import annotations

import io

from django.conf import settings
from django.db import transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, DomainError, InvalidInput
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import engine
from ..choices import ColumnKind, ColumnRole, ReferenceSource
from ..models import ReferenceColumn, ReferenceDataset
from ._shared import RESERVED, _check_size, _team_of


def _validate_schema(schema: list[dict], *, columns: set[str] | None = None) -> list[dict]:
    if not isinstance(schema, list) or not schema:
        raise InvalidInput("The schema must be a non-empty list of {name, kind, role}.", fields={"schema": ["Empty."]})
    seen, cleaned = set(), []
    for i, col in enumerate(schema):
        if not isinstance(col, dict) or set(col) - {"name", "kind", "role"} or "name" not in col:
            raise InvalidInput(f"Schema entry {i} must be an object with name, kind and role.",
                               fields={"schema": [f"Entry {i} is malformed."]})
        name, kind, role = str(col["name"]), col.get("kind", ColumnKind.NUMERIC), col.get("role", ColumnRole.FEATURE)
        if not name or len(name) > 200 or "\x00" in name:
            raise InvalidInput(f"Schema entry {i}: a column name must have 1 to 200 characters and no NUL.",
                               fields={"schema": [f"Entry {i}: bad name."]})
        if kind not in ColumnKind.values:
            raise InvalidInput(f"Column '{name}': kind must be numeric or categorical, not '{kind}'.",
                               fields={"schema": [f"{name}: unknown kind '{kind}'."]})
        if role not in ColumnRole.values:
            raise InvalidInput(f"Column '{name}': role must be feature, prediction or target, not '{role}'.",
                               fields={"schema": [f"{name}: unknown role '{role}'."]})
        if name in seen:
            raise InvalidInput(f"Column '{name}' appears twice in the schema.", fields={"schema": [f"{name}: duplicate."]})
        if role == ColumnRole.FEATURE and name in RESERVED:
            raise InvalidInput(f"'{name}' is a reserved log field and cannot be a feature name.",
                               fields={"schema": [f"{name}: reserved."]})
        if columns is not None and name not in columns:
            raise InvalidInput(f"Column '{name}' is not in the reference data (it has: {', '.join(sorted(columns))}).",
                               fields={"schema": [f"{name}: not in the data."]})
        seen.add(name)
        cleaned.append({"name": name, "kind": kind, "role": role})
    if sum(c["role"] == ColumnRole.PREDICTION for c in cleaned) > 1:
        raise InvalidInput("At most one column may have the role 'prediction'.")
    if sum(c["role"] == ColumnRole.TARGET for c in cleaned) > 1:
        raise InvalidInput("At most one column may have the role 'target'.")
    if not any(c["role"] == ColumnRole.FEATURE for c in cleaned):
        raise InvalidInput("The schema needs at least one feature column.")
    return cleaned


def read_table(*, content: bytes, filename: str):
    """A DataFrame from CSV or Parquet bytes; a clear 400 for anything else."""
    import pandas as pd

    lower = filename.lower()
    try:
        if lower.endswith(".parquet") or content[:4] == b"PAR1":
            return pd.read_parquet(io.BytesIO(content))
        if lower.endswith(".csv") or lower.endswith(".txt") or not lower:
            return pd.read_csv(io.BytesIO(content))
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise InvalidInput(f"Could not read '{filename}': {str(exc).splitlines()[0][:300]}") from exc
    raise InvalidInput(f"Unsupported file type '{filename}': upload a .csv or .parquet file.")


def _store_reference(*, actor, model_version, name: str, source: str, source_detail: str, frame,
                     schema: list[dict] | None, prediction: str | None, target: str | None) -> ReferenceDataset:
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if frame is None or len(frame) == 0:
        raise InvalidInput("The reference data has no rows.")
    frame.columns = [str(c) for c in frame.columns]
    for role, col in (("prediction", prediction), ("target", target)):
        if col and col not in frame.columns:
            raise InvalidInput(f"The {role} column '{col}' is not in the reference data "
                               f"(columns: {', '.join(frame.columns)}).")
    schema = _validate_schema(schema or engine.infer_schema(frame, prediction=prediction, target=target),
                              columns=set(frame.columns))
    frame = frame[[c["name"] for c in schema]]
    reference = ReferenceDataset.objects.create(
        team=team, model_version=model_version, name=name[:200], source=source, source_detail=source_detail[:1000],
        schema=schema, row_count=len(frame),
        sample_parquet=engine.sample_parquet(frame, limit=settings.MONITORING_REPORT_SAMPLE),
        full_parquet=(engine.sample_parquet(frame, limit=len(frame))
                      if settings.MONITORING_REPORT_SAMPLE < len(frame) <= settings.MONITORING_FULL_REPORT_MAX_ROWS
                      else None),
        created_by=actor if getattr(actor, "is_authenticated", False) else None)
    _prepare_columns(reference, frame)
    audit_record(actor=actor, action="monitoring.reference.create", target=reference,
                 changes={"name": [None, reference.name], "source": [None, source], "rows": [None, len(frame)],
                          "schema": [None, schema]})
    return reference


def _prepare_columns(reference: ReferenceDataset, frame) -> None:
    import pandas as pd

    reference.column_data.all().delete()
    for col in reference.schema:
        series = frame[col["name"]]
        if col["kind"] == ColumnKind.NUMERIC and not pd.api.types.is_numeric_dtype(series):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = int(coerced.isna().sum() - series.isna().sum())
            if bad:
                raise InvalidInput(f"Column '{col['name']}' is marked numeric but {bad} reference values are not "
                                   f"numbers; mark it categorical or fix the data.",
                                   fields={"schema": [f"{col['name']}: {bad} non-numeric values."]})
        ReferenceColumn.objects.create(reference=reference, name=col["name"], kind=col["kind"],
                                       **engine.prepare_column(series, col["kind"]))


@transaction.atomic
def reference_upload(*, actor, model_version, name: str, content: bytes, filename: str,
                     prediction: str | None = None, target: str | None = None,
                     schema: list[dict] | None = None) -> ReferenceDataset:
    """Register an uploaded CSV/Parquet file as reference data; its schema is inferred unless given."""
    _check_size(len(content))
    frame = read_table(content=content, filename=filename)
    return _store_reference(actor=actor, model_version=model_version, name=name or filename,
                            source=ReferenceSource.UPLOAD, source_detail=filename, frame=frame, schema=schema,
                            prediction=prediction, target=target)


@transaction.atomic
def _value_kind(value) -> str:
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, (int, float)):
        return "numbers"
    if isinstance(value, str):
        return "text"
    return "objects or lists"


def _check_column_types(frame) -> None:
    """Each inline column holds one kind of value: Parquet (the stored sample) and drift need a column type, and
    "x" next to 1 has none."""
    for name in frame.columns:
        if frame[name].dtype != object:
            continue
        first_row = {}
        for row, value in frame[name].items():
            if value is not None and value == value:
                first_row.setdefault(_value_kind(value), (row, value))
        if "objects or lists" in first_row:
            row, value = first_row["objects or lists"]
            raise InvalidInput(f"Column '{name}' holds an object or a list (row {row}: {value!r}); give numbers, "
                               f"text, booleans or null.", fields={"rows": [f"{name}: not a number or text"]})
        if len(first_row) > 1:
            seen = "; ".join(f"{kind} (row {row}: {value!r})" for kind, (row, value) in first_row.items())
            raise InvalidInput(f"Column '{name}' mixes {seen}. Give every value of a column the same type: numbers "
                               f"for a numeric column, text for a categorical one.",
                               fields={"rows": [f"{name}: mixed types"]})


def reference_from_rows(*, actor, model_version, name: str, frame, schema: list[dict] | None = None,
                        prediction: str | None = None, target: str | None = None) -> ReferenceDataset:
    """Reference data given inline (a DataFrame built from JSON rows)."""
    _check_column_types(frame)
    return _store_reference(actor=actor, model_version=model_version, name=name, source=ReferenceSource.UPLOAD,
                            source_detail="inline rows", frame=frame, schema=schema, prediction=prediction,
                            target=target)


@transaction.atomic
def reference_from_mlflow(*, actor, model_version, artifact_path: str | None = None,
                          prediction: str | None = None, target: str | None = None) -> ReferenceDataset:
    """Reference data from the version's MLflow run: a logged CSV/Parquet artifact (the first one found, or
    `artifact_path`)."""
    if not model_version.run_id:
        raise Conflict(f"{model_version} has no MLflow run recorded; upload the reference data instead.")
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI)
    try:
        if not artifact_path:
            candidates = []
            pending = [""]
            while pending and len(candidates) < 1:
                for info in client.list_artifacts(model_version.run_id, pending.pop() or None):
                    if info.is_dir:
                        pending.append(info.path)
                    elif info.path.lower().endswith((".csv", ".parquet")):
                        candidates.append(info.path)
            if not candidates:
                raise Conflict(f"The MLflow run {model_version.run_id} of {model_version} has no CSV or Parquet "
                               f"artifact to use as reference data; log one or upload a file.")
            artifact_path = candidates[0]
        local = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path=artifact_path,
                                                    tracking_uri=settings.MLFLOW_TRACKING_URI)
    except DomainError:
        raise
    except Exception as exc:
        raise Conflict(f"Could not fetch '{artifact_path or 'artifacts'}' from MLflow run {model_version.run_id}: "
                       f"{str(exc).splitlines()[0][:300]}") from exc
    with open(local, "rb") as fh:
        content = fh.read()
    frame = read_table(content=content, filename=artifact_path)
    return _store_reference(actor=actor, model_version=model_version, name=f"run {model_version.run_id[:8]}: {artifact_path}",
                            source=ReferenceSource.MLFLOW, source_detail=f"runs:/{model_version.run_id}/{artifact_path}",
                            frame=frame, schema=None, prediction=prediction, target=target)


@transaction.atomic
def reference_schema_update(*, actor, reference: ReferenceDataset, schema: list[dict]) -> ReferenceDataset:
    """Edit kinds and roles (columns can be dropped, not added); prepared columns are rebuilt from the sample
    only when a kind changes, so a kind change needs the full data again: refused if the sample is partial."""
    require_capability(user=actor, team=reference.team, capability=Capability.OPERATE)
    import pandas as pd

    before = reference.schema
    old = {c["name"]: c for c in before}
    schema = _validate_schema(schema, columns=set(old))
    kind_changed = [c["name"] for c in schema if c["kind"] != old[c["name"]]["kind"]]
    if kind_changed:
        frame = pd.read_parquet(io.BytesIO(bytes(reference.full_parquet or reference.sample_parquet)))
        if len(frame) < reference.row_count:
            raise Conflict(f"Changing the kind of {', '.join(kind_changed)} needs the full reference data; upload it "
                           f"again with the corrected schema.")
        reference.schema = schema
        _prepare_columns(reference, frame[[c["name"] for c in schema]])
    else:
        ReferenceColumn.objects.filter(reference=reference).exclude(name__in=[c["name"] for c in schema]).delete()
    reference.schema = schema
    reference.save(update_fields=["schema"])
    audit_record(actor=actor, action="monitoring.reference.schema_update", target=reference,
                 changes={"schema": [before, schema]})
    return reference
