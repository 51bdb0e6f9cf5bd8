"""JSON prediction batches decoded straight into columns: the ingest hot path for batches with no bad row.

The general path (apps.core.api.parsers.StrictJSONParser, then BatchCreateSerializer, then ingestion.validate_rows)
builds a dict per row, walks every value twice in Python and regroups the rows into columns to write them; at
20 numeric features that was 80 % of a batch's time (bench/README.md, Ingest). Here msgspec decodes the rows
against a row type built from the monitor schema, so each value's type is checked in C while it is parsed, and
the checks left (timestamps, their range, negative latencies) run per column.

This path only takes a batch the general path would take whole, and stores the same values. Anything else —
a value of another type (a number sent as a string, a boolean feature), an unknown field, a row the general
path would reject, or anything the strict JSON parser refuses (NUL, a lone surrogate, invalid UTF-8, an integer
past 64 bits, a float past the double range, NaN, nesting) — makes `decode_batch` return None and the view takes
the general path, which answers as before: the same per-row rejection reasons and counts, the same 4xx.
"""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from functools import lru_cache
from itertools import repeat
from operator import attrgetter
from typing import Annotated, Union

import msgspec
import numpy as np
from django.conf import settings

from apps.core.api.fields import DATETIME_RANGE, INT64_MAX, INT64_MIN
from apps.core.errors import DomainError

from .. import columnar, engine, logstore
from ..choices import ColumnKind, ColumnRole

# Every integer is bounded as the strict parser bounds it; a float-only type would take 10**30 as 1e30.
_Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
# BatchCreateSerializer's IntegerFields, hardened to 32 bits (apps.core.api.fields.harden).
_Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
_NUMBER = Union[_Int64, float, None, msgspec.UnsetType]
_CATEGORY = Union[str, _Int64, float, bool, None, msgspec.UnsetType]
_UNSET = msgspec.UNSET
_UTC = dt_timezone.utc


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    """The body's fields (BatchCreateSerializer's, less `file`); the rows are decoded once the schema is known."""

    batch_id: str
    rows: msgspec.Raw
    model_version: Union[_Int32, msgspec.UnsetType] = _UNSET
    deployment: Union[_Int32, None, msgspec.UnsetType] = _UNSET


def decode_header(request) -> _Header | None:
    """The body's fields, or None when the general path must read the body (not plain UTF-8 JSON, a NUL
    anywhere, or any field the serializer would refuse or change)."""
    django_request = request._request
    if django_request.content_type != "application/json" or \
            django_request.content_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        return None
    body = django_request.body
    # JSON can only carry NUL escaped; the strict parser refuses it anywhere (a string spelling out the
    # characters \u0000 lands here too, and only costs it the general path).
    if b"\\u0000" in body:
        return None
    try:
        header = msgspec.json.decode(body, type=_Header)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # RecursionError: nested ~1,000 deep
        return None
    # CharField(max_length=200): trimmed, not blank.
    if not 0 < len(header.batch_id) <= 200 or header.batch_id.strip() != header.batch_id:
        return None
    return header


@lru_cache(maxsize=64)
def _row_type(features: tuple[tuple[str, str], ...]):
    """The msgspec type of a row under these (feature name, kind) columns. Struct fields are c0, c1, … renamed
    to the feature names, which may be any text."""
    fields = [(f"c{i}", _NUMBER if kind == ColumnKind.NUMERIC else _CATEGORY, _UNSET)
              for i, (_, kind) in enumerate(features)]
    rename = {f"c{i}": name for i, (name, _) in enumerate(features)}
    feature_type = msgspec.defstruct("Features", fields, rename=rename, forbid_unknown_fields=True, gc=False)
    row_type = msgspec.defstruct("Row", [
        ("timestamp", str),
        ("features", feature_type),
        ("request_id", Union[str, _Int64, None], None),
        ("prediction", Union[str, _Int64, float, bool, None], None),
        ("score", Union[_Int64, float, None], None),
        ("latency_ms", Union[_Int64, float, None], None),
        ("error", Union[str, None], None),
    ], forbid_unknown_fields=True, gc=False)
    return list[row_type]


class Columns:
    """A validated batch as columns: Python lists for the COPY, Arrow arrays for the Parquet file."""

    def __init__(self, *, ts, request_ids, predictions, prediction_nums, scores, latencies, errors, features):
        self.ts, self.request_ids, self.predictions = ts, request_ids, predictions
        self.prediction_nums, self.scores, self.latencies, self.errors = prediction_nums, scores, latencies, errors
        self.features = features  # {name: pyarrow array}
        self.ts_min, self.ts_max = min(ts), max(ts)

    def __len__(self) -> int:
        return len(self.ts)

    def write(self, *, model_version_id: int, deployment_id: int | None, batch_pk: int) -> None:
        """What logstore.copy_rows writes for rows, from columns: the row fields by COPY, the features as Parquet."""
        import pyarrow as pa

        with logstore.row_copy() as write_row:
            for row in zip(repeat(model_version_id), repeat(deployment_id), repeat(batch_pk), self.ts,
                           self.request_ids, self.predictions, self.prediction_nums, self.scores, self.latencies,
                           self.errors):
                write_row(row)
            # Built while PostgreSQL works through the rows sent (the COPY ends when this block does).
            table = pa.table({
                "ts": pa.array(self.ts, pa.timestamp("us", tz="UTC")),
                "request_id": pa.array(self.request_ids, pa.string()),
                "prediction": pa.array(self.predictions, pa.string()),
                "prediction_num": pa.array(self.prediction_nums, pa.float64()),
                **self.features,
            })
        columnar.write_table(model_version_id=model_version_id, batch_pk=batch_pk, table=table)


def decode_rows(raw, *, schema: dict[str, dict]) -> Columns | None:
    """The rows as columns if every one passes validate_rows as it is; None sends the batch the general way."""
    features = tuple((name, col["kind"]) for name, col in schema.items() if col["role"] == ColumnRole.FEATURE)
    try:
        rows = msgspec.json.decode(raw, type=_row_type(features))
    except (msgspec.MsgspecError, ValueError, RecursionError):  # RecursionError: nested ~1,000 deep
        return None
    if not rows or len(rows) > settings.MONITORING_MAX_BATCH_ROWS:
        return None  # the general path answers 400 / 413
    try:
        ts = _timestamps([row.timestamp for row in rows])
        pred_col = next((c for c in schema.values() if c["role"] == ColumnRole.PREDICTION), None)
        predictions, prediction_nums = _predictions([row.prediction for row in rows],
                                                    numeric=pred_col is not None and pred_col["kind"] == ColumnKind.NUMERIC)
        scores = _numbers([row.score for row in rows])
        latencies = _numbers([row.latency_ms for row in rows])
        if any(v < 0 for v in latencies if v is not None):
            return None  # rejected rows ("negative")
        columns = _feature_columns([row.features for row in rows], features)
    except _Refer:
        return None
    request_ids = [r if type(r) is str and len(r) <= 200 else "" if r is None else str(r)[:200]
                   for r in (row.request_id for row in rows)]
    errors = [None if e is None or e == "" else e[:2000] for e in (row.error for row in rows)]
    return Columns(ts=ts, request_ids=request_ids, predictions=predictions, prediction_nums=prediction_nums,
                   scores=scores, latencies=latencies, errors=errors, features=columns)


class _Refer(Exception):
    """A value the general path must judge (it may reject the row)."""


def _timestamps(values: list[str]) -> list[datetime]:
    """ingestion._parse_ts for strings, where fromisoformat takes them (Django's parse_datetime tries it first)."""
    fromisoformat = datetime.fromisoformat
    try:
        parsed = [fromisoformat(v.strip()) for v in values]
        # astimezone returns a UTC datetime itself; naive ones are UTC.
        ts = [t if t.tzinfo is _UTC else (t.replace(tzinfo=_UTC) if t.tzinfo is None else t).astimezone(_UTC)
              for t in parsed]
    except (ValueError, OverflowError, OSError):
        raise _Refer from None
    if min(ts) < DATETIME_RANGE[0] or max(ts) >= DATETIME_RANGE[1]:
        raise _Refer
    return ts


def _numbers(values: list) -> list:
    """_num for ints, floats and None (msgspec refused every other type, and non-finite floats)."""
    return [v if v is None or type(v) is float else float(v) for v in values]


def _predictions(values: list, *, numeric: bool) -> tuple[list, list]:
    """(canonical text, number) per prediction, as validate_rows stores them."""
    canonical = engine.canonical_category
    texts, numbers = [], []
    for value in values:
        kind = type(value)
        if kind is float:
            texts.append(str(int(value)) if value.is_integer() else repr(value))
            numbers.append(value)
        elif value is None:
            texts.append(None)
            numbers.append(None)
        elif kind is str:
            texts.append(value)
            if numeric:
                try:
                    number = float(value)
                except ValueError:
                    raise _Refer from None
                numbers.append(number if number - number == 0 else None)  # non-finite text → no number
            else:
                numbers.append(None)
        elif kind is bool:
            if numeric:
                raise _Refer
            texts.append(canonical(value))
            numbers.append(None)
        else:  # int
            texts.append(canonical(value))
            numbers.append(float(value))
    return texts, numbers


def _feature_columns(rows: list, features: tuple[tuple[str, str], ...]) -> dict:
    """{name: Arrow array} for every feature at least one row has, as columnar.write_batch builds them."""
    import pyarrow as pa

    columns = {}
    numeric = [i for i, (_, kind) in enumerate(features) if kind == ColumnKind.NUMERIC]
    if len(numeric) > 1:
        # All numeric features at once through one float64 matrix: None becomes NaN, which no JSON value is
        # (ints convert as float() does). A feature some rows leave out (UNSET) fails here and goes per column.
        try:
            matrix = np.array(list(map(attrgetter(*(f"c{i}" for i in numeric)), rows)), dtype=np.float64).T.copy()
        except (TypeError, ValueError):
            pass
        else:
            missing = np.isnan(matrix)
            for j, i in enumerate(numeric):
                columns[features[i][0]] = pa.array(matrix[j], mask=missing[j] if missing[j].any() else None)
    for i, (name, kind) in enumerate(features):
        if name in columns:
            continue
        column = list(map(attrgetter(f"c{i}"), rows))
        if all(v is _UNSET for v in column):
            continue
        if kind == ColumnKind.NUMERIC:
            # float() as validate_rows does: pyarrow refuses an integer a double cannot hold exactly.
            columns[name] = pa.array([None if v is None or v is _UNSET else float(v) for v in column], pa.float64())
        else:
            canonical = engine.canonical_category
            columns[name] = pa.array([None if v is None or v is _UNSET else v if type(v) is str else canonical(v)
                                      for v in column], pa.string())
    return {name: columns[name] for name, _ in features if name in columns}


def batch_columns(header: _Header, *, model_version) -> Columns | None:
    """The header's rows as Columns under the version's monitor schema, or None (see the module docstring)."""
    from .ingestion import _schema_for

    try:
        schema = _schema_for(model_version)
    except DomainError:
        return None
    return decode_rows(header.rows, schema=schema)
