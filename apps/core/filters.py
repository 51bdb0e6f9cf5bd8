"""django-filter pieces shared by the filtersets: date-time filters with the API's range (apps.core.api.fields)."""
from datetime import timezone

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from apps.core.api.fields import DATETIME_RANGE


class BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            parsed = parsed.astimezone(timezone.utc)
        except OverflowError:
            parsed = None
        earliest, latest = DATETIME_RANGE
        if parsed is None or not earliest <= parsed < latest:
            raise forms.ValidationError(f"Give an ISO 8601 date-time from {earliest:%Y-%m-%d} up to {latest:%Y-%m-%d} "
                                        f"(UTC), e.g. 2026-11-01T00:00:00Z.", code="invalid")
        return parsed


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField
