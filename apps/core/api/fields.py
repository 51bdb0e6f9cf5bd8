"""Strict input fields: what every API input serializer accepts, stated once.

`StrictInputSerializer` passes each of its fields through `harden()`, so a serializer written with DRF's plain
fields still gets these rules, and drf-spectacular documents them (it reads the same validators):

- integers are bounded (PostgreSQL `integer` unless the field says less), so 10**30 is a 400, not an overflow;
- floats are finite and bounded;
- strings have a length limit (the field's own, SLUG_MAX_LENGTH for slugs, or DEFAULT_MAX_LENGTH) and never
  contain NUL (DRF's own rule);
- booleans are JSON booleans: "false" is not false (query strings and multipart forms may say true/false);
- date-times are within DATETIME_RANGE and returned in UTC (PostgreSQL refuses offsets past ±15:59).
Plain dates are left to the serializer (the only ones, a cost report's period, have their own tighter rule).
"""
from datetime import datetime, timezone

from django.http import QueryDict
from rest_framework import serializers

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_LIMIT = 1e15
DEFAULT_MAX_LENGTH = 10_000
SLUG_MAX_LENGTH = 63  # the longest slug column (teams, clusters, namespaces: a Kubernetes name)
# Real data lies well inside; the margin keeps date arithmetic (a month later, a window's end) clear of year 10000.
DATETIME_RANGE = (datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(9000, 1, 1, tzinfo=timezone.utc))


def _from_text_form(field) -> bool:
    """Query strings and multipart forms carry only text; JSON bodies carry types. A serializer of query
    parameters says so with `text_input = True`."""
    root = field.root
    return getattr(root, "text_input", False) or isinstance(getattr(root, "initial_data", None), QueryDict)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be a JSON boolean (true or false), not {input!r}."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and _from_text_form(self) and data.lower() in ("true", "false"):
            return data.lower() == "true"
        self.fail("invalid", input=data)


class FiniteFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "A finite number is required."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", -FLOAT_LIMIT)
        kwargs.setdefault("max_value", FLOAT_LIMIT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if value != value or value in (float("inf"), float("-inf")):
            self.fail("invalid")
        return value


def check_datetime_range(value: datetime, *, label: str = "Date-time") -> datetime:
    earliest, latest = DATETIME_RANGE
    if not earliest <= value < latest:
        raise serializers.ValidationError(
            f"{label} must be from {earliest:%Y-%m-%d} up to {latest:%Y-%m-%d} (UTC); got {value.isoformat()}.")
    return value


class BoundedDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a time zone offset (UTC when none is given), within DATETIME_RANGE; returned in UTC."""

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        try:
            parsed = parsed.astimezone(timezone.utc)
        except OverflowError:
            self.fail("invalid", format="ISO 8601 within years 1900-8999")
        return check_datetime_range(parsed)


def _rebuilt(field, cls=None, **kwargs):
    """The same field declared again with more keyword arguments (how DRF itself copies a declared field)."""
    return (cls or type(field))(*field._args, **{**field._kwargs, **kwargs})


def harden(field):
    """The strict version of a declared input field (see the module docstring); other fields come back as they are."""
    if isinstance(field, serializers.BooleanField) and not isinstance(field, StrictBooleanField):
        return _rebuilt(field, StrictBooleanField)
    if isinstance(field, serializers.IntegerField) and (field.max_value is None or field.min_value is None):
        bounds = {}
        if field.min_value is None:
            bounds["min_value"] = INT32_MIN
        if field.max_value is None:
            bounds["max_value"] = INT32_MAX
        return _rebuilt(field, **bounds)
    if type(field) is serializers.FloatField:
        return _rebuilt(field, FiniteFloatField)
    if isinstance(field, serializers.SlugField) and field.max_length is None:
        return _rebuilt(field, max_length=SLUG_MAX_LENGTH)
    if isinstance(field, serializers.CharField) and field.max_length is None:
        return _rebuilt(field, max_length=DEFAULT_MAX_LENGTH)
    if type(field) is serializers.DateTimeField:
        return _rebuilt(field, BoundedDateTimeField)
    if isinstance(field, (serializers.ListField, serializers.DictField)) and field.child is not None:
        child = harden(field.child)
        if child is not field.child:
            field = _rebuilt(field, child=child)
    return field

