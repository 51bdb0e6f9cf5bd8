"""The JSON every API body is parsed with: besides DRF's rules (no NaN/Infinity), no value that no column, JSONB
document or numeric type here can hold, refused with the path to it:

- a NUL character (PostgreSQL text and JSONB refuse U+0000) in any string or key;
- an integer outside 64 bits (pandas, pyarrow and bigint columns overflow);
- a float that overflowed to infinity (1e400).
"""
import math

from rest_framework import exceptions, parsers

from apps.core.api.fields import INT64_MAX, INT64_MIN

MAX_DEPTH = 64


def _where(path: str) -> str:
    return path or "body"


def check_json_values(value, path: str = "", depth: int = 0) -> None:
    """Raise a ValidationError naming the first value no database column or numeric type here can hold."""
    if depth > MAX_DEPTH:
        raise exceptions.ValidationError({_where(path): [f"Nested more than {MAX_DEPTH} levels deep."]})
    if isinstance(value, str):
        if "\x00" in value:
            raise exceptions.ValidationError({_where(path): ["Text may not contain the NUL character (\\u0000)."]})
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise exceptions.ValidationError({_where(path): [
                f"Integer out of range: give a whole number from {INT64_MIN} to {INT64_MAX}."]})
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise exceptions.ValidationError({_where(path): ["Number too large: give a finite number."]})
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            check_json_values(key, child, depth + 1)
            check_json_values(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_values(item, f"{path}[{index}]", depth + 1)


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_json_values(data)
        return data
