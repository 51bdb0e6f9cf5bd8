"""Streamed CSV/JSONL exports: rows come from a server-side cursor, so memory stays flat."""
import csv
import io
import itertools
import json
from typing import Callable, Iterable, Iterator

EXPORT_FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def stream_rows(rows: Iterable[dict], *, fmt: str, columns: list[str]) -> Iterator[str]:
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, default=str, sort_keys=True) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writeheader()
    yield flush()
    for row in rows:
        writer.writerow({k: json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for k, v in row.items()})
        yield flush()


def streaming_export(queryset, *, fmt: str, columns: list[str], to_row: Callable[[object], dict], chunk_size=2000):
    return stream_rows((to_row(obj) for obj in queryset.iterator(chunk_size=chunk_size)), fmt=fmt, columns=columns)


def export_format(raw: str | None) -> str:
    from apps.core.errors import InvalidInput

    fmt = (raw or "csv").lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            f"Unknown export format '{raw}'. Use one of: {', '.join(EXPORT_FORMATS)}.", fields={"format": ["unknown"]}
        )
    return fmt


def started(chunks: Iterator[str]) -> Iterator[str]:
    """The stream with its first rows already read: the query runs (and any error it raises is answered in the
    API's error shape) before the status line and the first byte are sent, not after a 200."""
    head = []
    for chunk in chunks:
        head.append(chunk)
        if len(head) == 2:  # the CSV header and the first row, or the first JSON line and the second
            break
    return itertools.chain(head, chunks)


def export_response(queryset, *, fmt: str, columns: list[str], to_row: Callable[[object], dict], filename: str):
    from django.http import StreamingHttpResponse

    response = StreamingHttpResponse(
        started(streaming_export(queryset, fmt=fmt, columns=columns, to_row=to_row)), content_type=EXPORT_FORMATS[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
