"""The JSON every API body is parsed with: besides DRF's rules (no NaN/Infinity), no value that no column, JSONB
document or numeric type here can hold, refused with the path to it:

- a NUL character (PostgreSQL text and JSONB refuse U+0000) or a lone surrogate (not UTF-8) in any string or key;
- an integer outside 64 bits (pandas, pyarrow and bigint columns overflow);
- a float that overflowed to infinity (1e400).
"""
import math

from rest_framework import exceptions, parsers

from apps.core.api.fields import INT64_MAX, INT64_MIN

MAX_DEPTH = 64


def _where(path: str) -> str:
    """The path as printable text: the error is echoed (and may be stored), so it must not carry what it refuses."""
    return (path or "body").replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _is_text(value: str) -> bool:
    """No NUL and no lone surrogate (JSON can write one as "\\ud800"; no UTF-8 column can store it)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json_values(value, path: str = "", depth: int = 0) -> None:
    """Raise a ValidationError naming the first value no database column or numeric type here can hold."""
    if depth > MAX_DEPTH:
        raise exceptions.ValidationError({_where(path): [f"Nested more than {MAX_DEPTH} levels deep."]})
    if isinstance(value, str):
        if not _is_text(value):
            raise exceptions.ValidationError({_where(path): [
                "Text may not contain the NUL character (\\u0000) or a lone surrogate (\\ud800-\\udfff)."]})
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
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # json gives up ~1,000 levels deep, before check_json_values could say so (was a 500)
            raise exceptions.ValidationError({_where(""): [f"Nested more than {MAX_DEPTH} levels deep."]}) from None
        check_json_values(data)
        return data
