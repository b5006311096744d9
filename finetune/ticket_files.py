"""Reading a ticket file: its size limit, UTF-8, and its CSV or JSONL rows, each checked; no database.

``ticket_rows`` is what ``finetune.importing.tickets_import`` reads a file through: every problem
goes into the ``ImportReport`` with its line, and rows that fail come back as None so that the
importer can go on collecting every error before it writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError

FORMATS = ("csv", "jsonl")
# Errors kept for the report; past this only the total is counted.
MAX_REPORTED_ERRORS = 200
# The column/key that marks a row "not a request" (Ticket.no_intent), as the export writes it.
NO_INTENT_COLUMN = "no_intent"
_TRUE = {"1", "true", "yes"}
_FALSE = {"", "0", "false", "no"}


@dataclass(frozen=True)
class ImportIssue:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    unlabelled: int = 0
    not_a_request: int = 0
    # Team name -> tickets imported with that label.
    per_team: dict[str, int] = field(default_factory=dict)
    created_teams: list[str] = field(default_factory=list)
    errors: list[ImportIssue] = field(default_factory=list)
    error_total: int = 0

    @property
    def ok(self) -> bool:
        return self.error_total == 0

    def add_error(self, line: int | None, message: str) -> None:
        self.error_total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(ImportIssue(line=line, message=message))

    def summary_lines(self) -> list[str]:
        if not self.ok:
            lines = [f"Import failed with {self.error_total} error(s); nothing was imported."]
            lines += [f"  {issue}" for issue in self.errors]
            if self.error_total > len(self.errors):
                lines.append(f"  ... and {self.error_total - len(self.errors)} more.")
            return lines
        lines = [f"Imported {self.imported} tickets; skipped {self.duplicates} duplicates."]
        if self.created_teams:
            lines.append(f"Created teams: {', '.join(self.created_teams)}.")
        lines += [f"  {name}: {count}" for name, count in sorted(self.per_team.items())]
        if self.not_a_request:
            lines.append(f"  (not a request): {self.not_a_request}")
        if self.unlabelled:
            lines.append(f"  (unlabelled): {self.unlabelled}")
        return lines


@dataclass
class TicketRow:
    line: int
    text: str
    label: str | None
    no_intent: bool = False


def _no_intent_value(value: object, line: int, report: ImportReport) -> bool | None:
    """A no_intent cell or value as a bool; None (with an error) when it is neither yes nor no."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().casefold() in _TRUE | _FALSE:
        return value.strip().casefold() in _TRUE
    report.add_error(line, f"'{NO_INTENT_COLUMN}' must be 1 or 0 (true or false), got {value!r}.")
    return None


def _read_limited(stream_or_path: str | Path | IO[bytes], report: ImportReport) -> bytes | None:
    """The file's bytes, or None (with an error) if it is over MAX_IMPORT_BYTES or empty."""
    limit = setting("MAX_IMPORT_BYTES")
    if isinstance(stream_or_path, (str, Path)):
        try:
            size = os.path.getsize(stream_or_path)
        except OSError as exc:
            report.add_error(None, f"Cannot read {stream_or_path}: {exc.strerror}.")
            return None
        if size > limit:
            report.add_error(None, f"File is {size:,} bytes; the limit is {limit:,} bytes.")
            return None
        data = Path(stream_or_path).read_bytes()
    else:
        size = getattr(stream_or_path, "size", None)
        if size is not None and size > limit:
            report.add_error(None, f"File is {size:,} bytes; the limit is {limit:,} bytes.")
            return None
        # Streams without a size: read one byte past the limit to know it is too big.
        data = stream_or_path.read(limit + 1)
        if len(data) > limit:
            report.add_error(None, f"File is over the limit of {limit:,} bytes.")
            return None
    if not data.strip():
        report.add_error(None, "File is empty: expected a header row and at least one ticket.")
        return None
    return data


def _decode(data: bytes, report: ImportReport) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report.add_error(
            line,
            f"File is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}). "
            "Save it as UTF-8 and upload it again.",
        )
        return None


def _missing_column(column: str, available: list[str], report: ImportReport) -> None:
    shown = ", ".join(repr(name) for name in available) or "none"
    report.add_error(1, f"Column '{column}' not found. Columns in the file: {shown}.")


def _csv_rows(text: str, text_column: str, label_column: str | None, report: ImportReport):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error) as exc:
        report.add_error(1, f"Cannot read the CSV header: {exc or 'no header row'}.")
        return
    for column in (text_column, label_column):
        if column is not None and column not in header:
            _missing_column(column, header, report)
    if not report.ok:
        return
    text_at = header.index(text_column)
    label_at = header.index(label_column) if label_column is not None else None
    no_intent_at = header.index(NO_INTENT_COLUMN) if NO_INTENT_COLUMN in header else None
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.add_error(line, f"Malformed CSV: {exc}.")
            return
        if values:  # csv skips nothing itself: blank lines arrive as []
            yield _csv_row(line, values, header, (text_at, label_at, no_intent_at), report)
        line = reader.line_num + 1


def _csv_row(
    line: int, values: list[str], header: list[str], at: tuple[int, int | None, int | None], report: ImportReport
) -> TicketRow | None:
    text_at, label_at, no_intent_at = at
    if len(values) != len(header):
        report.add_error(line, f"Row has {len(values)} fields; the header has {len(header)}.")
        return None
    label = values[label_at].strip() if label_at is not None else ""
    no_intent = _no_intent_value(values[no_intent_at], line, report) if no_intent_at is not None else False
    if no_intent is None:
        return None
    return TicketRow(line=line, text=values[text_at], label=label or None, no_intent=no_intent)


def _jsonl_rows(text: str, text_column: str, label_column: str | None, report: ImportReport):
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            report.add_error(line, f"Invalid JSON: {exc.msg} (column {exc.colno}).")
            continue
        if not isinstance(obj, dict):
            report.add_error(line, f"Expected a JSON object, got {type(obj).__name__}.")
            continue
        if text_column not in obj:
            report.add_error(line, f"Missing key '{text_column}'; keys: {', '.join(obj) or 'none'}.")
            continue
        label = obj.get(label_column) if label_column is not None else None
        if label is not None and not isinstance(label, str):
            report.add_error(line, f"'{label_column}' must be a string or null, got {label!r}.")
            continue
        no_intent = _no_intent_value(obj.get(NO_INTENT_COLUMN), line, report)
        if no_intent is None:
            continue
        yield TicketRow(line=line, text=obj[text_column], label=(label or "").strip() or None, no_intent=no_intent)


def detect_format(*, name: str, fmt: str | None) -> str:
    """The explicit format, or one inferred from the file name (.csv / .jsonl / .ndjson)."""
    if fmt:
        if fmt not in FORMATS:
            raise SwitchboardError(f"Unknown format '{fmt}'; use csv or jsonl.", code="invalid_format")
        return fmt
    suffix = Path(name or "").suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".csv", ".txt", ""}:
        return "csv"
    raise SwitchboardError(f"Cannot tell the format of '{name}'; choose csv or jsonl.", code="invalid_format")


def _source_name(stream_or_path: str | Path | IO[bytes]) -> str:
    if isinstance(stream_or_path, (str, Path)):
        return str(stream_or_path)
    return getattr(stream_or_path, "name", "") or ""


def ticket_rows(
    *,
    stream_or_path: str | Path | IO[bytes],
    fmt: str | None,
    text_column: str,
    label_column: str | None,
    report: ImportReport,
) -> Iterator[TicketRow | None] | None:
    """The file's rows (None for a row that failed, its error in the report), or None when the
    file cannot be read at all or the report already holds an error."""
    try:
        fmt = detect_format(name=_source_name(stream_or_path), fmt=fmt)
    except SwitchboardError as exc:
        report.add_error(None, exc.message)
    data = _read_limited(stream_or_path, report) if report.ok else None
    decoded = _decode(data, report) if data is not None else None
    if decoded is None:
        return None
    rows = _csv_rows if fmt == "csv" else _jsonl_rows
    return rows(decoded, text_column, label_column, report)
