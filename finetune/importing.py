"""Import tickets from CSV or JSONL: validate every row first, then write all or nothing.

One service, :func:`tickets_import`, serves the admin upload form and ``manage.py
import_tickets``. A ``no_intent`` column (CSV) or key (JSONL), as ``export_tickets`` writes it,
marks rows "not a request"; files without it import as before. Duplicates (same normalised text, within the file or already stored) are
skipped and counted; any bad row, unknown label or unreadable file means nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError
from chatbot.core.text import text_hash, ticket_text_validate
from finetune.models import Ticket
from routing.models import Team

FORMATS = ("csv", "jsonl")
# Errors kept for the report; past this only the total is counted.
MAX_REPORTED_ERRORS = 200
_LOOKUP_CHUNK = 900  # stays under SQLite's bound-parameter limit
_CREATE_BATCH = 1000
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
class _Row:
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
) -> _Row | None:
    text_at, label_at, no_intent_at = at
    if len(values) != len(header):
        report.add_error(line, f"Row has {len(values)} fields; the header has {len(header)}.")
        return None
    label = values[label_at].strip() if label_at is not None else ""
    no_intent = _no_intent_value(values[no_intent_at], line, report) if no_intent_at is not None else False
    if no_intent is None:
        return None
    return _Row(line=line, text=values[text_at], label=label or None, no_intent=no_intent)


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
        yield _Row(line=line, text=obj[text_column], label=(label or "").strip() or None, no_intent=no_intent)


class _TeamResolver:
    """Maps labels to teams: through the team map, then by slug or name; plans new teams."""

    def __init__(self, team_map: Mapping[str, str], create_teams: bool):
        self.team_map = dict(team_map)
        self.create_teams = create_teams
        self.by_slug = {team.slug: team for team in Team.objects.all()}
        self.by_name = {team.name.casefold(): team for team in self.by_slug.values()}
        self.planned: dict[str, Team] = {}
        self.failed: dict[str, list[int]] = {}

    def resolve(self, label: str, line: int) -> Team | None:
        team = self._lookup(self.team_map.get(label, label))
        if team is None:
            self.failed.setdefault(label, []).append(line)
        return team

    def check_map_targets(self, report: ImportReport) -> None:
        """Every team the map names must exist (or be creatable), used by a row or not."""
        for reference in sorted(set(self.team_map.values())):
            if self._lookup(reference) is None:
                report.add_error(
                    None,
                    f"Team map names team '{reference}', which does not exist. Create it in the "
                    "Team admin, fix the map, or tick 'create missing teams'.",
                )

    def _lookup(self, reference: str) -> Team | None:
        slug = slugify(reference)
        team = self.by_slug.get(reference) or self.by_name.get(reference.casefold())
        team = team or self.by_slug.get(slug) or self.planned.get(slug)
        if team is None and self.create_teams and self._plannable(reference):
            team = Team(slug=slug, name=_team_name(reference))
            self.planned[slug] = team
        return team

    @staticmethod
    def _plannable(reference: str) -> bool:
        slug = slugify(reference)
        return bool(slug) and len(slug) <= 64 and len(reference) <= 120

    def report_failures(self, report: ImportReport) -> None:
        for label, lines in self.failed.items():
            shown = ", ".join(str(n) for n in lines[:5]) + (" ..." if len(lines) > 5 else "")
            if self.create_teams:
                why = "cannot become a team (its slug would be empty or too long)"
            else:
                why = "matches no team; add it to the team map or tick 'create missing teams'"
            report.add_error(lines[0], f"Label '{label}' {why} ({len(lines)} rows; lines {shown}).")


def _team_name(reference: str) -> str:
    # "Cash & ATM" is already a name; "card_arrival" or "top-up" is a slug to make readable.
    if any(ch.isupper() or ch.isspace() for ch in reference):
        return reference.strip()
    return reference.replace("_", " ").replace("-", " ").title()


def _existing_hashes(hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(hashes), _LOOKUP_CHUNK):
        chunk = hashes[start : start + _LOOKUP_CHUNK]
        found.update(Ticket.objects.filter(text_hash__in=chunk).values_list("text_hash", flat=True))
    return found


def _validate_map(team_map: object, report: ImportReport) -> dict[str, str]:
    if team_map is None:
        return {}
    if not isinstance(team_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in team_map.items()
    ):
        report.add_error(None, 'Team map must be a JSON object of label -> team, e.g. {"card_arrival": "cards"}.')
        return {}
    return {key.strip(): value.strip() for key, value in team_map.items()}


def team_map_load(*, raw: str | bytes) -> dict[str, str]:
    """Parse a team-map JSON document; raise SwitchboardError saying what is wrong."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SwitchboardError(f"Team map is not valid JSON: {exc}.", code="invalid_team_map")
    if not isinstance(value, dict):
        raise SwitchboardError(
            f"Team map must be a JSON object of label -> team, got {type(value).__name__}.",
            code="invalid_team_map",
        )
    return value


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


def _parse(data_text: str, fmt: str, text_column: str, label_column: str | None, report) -> Iterator:
    rows = _csv_rows if fmt == "csv" else _jsonl_rows
    return rows(data_text, text_column, label_column, report)


def _collect(rows, resolver: _TeamResolver, report: ImportReport) -> list[tuple[str, str, Team | None, bool]]:
    """Validate rows into (text, hash, team, no_intent); count duplicates within the file."""
    seen: set[str] = set()
    accepted = []
    for row in rows:
        if row is None:
            continue
        try:
            cleaned = ticket_text_validate(text=row.text)
        except SwitchboardError as exc:
            report.add_error(row.line, exc.message)
            continue
        if row.no_intent and row.label:
            report.add_error(row.line, f"Row has team '{row.label}' and is marked not a request; keep one.")
            continue
        team = resolver.resolve(row.label, row.line) if row.label else None
        digest = text_hash(cleaned)
        if digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        accepted.append((cleaned, digest, team, row.no_intent))
    return accepted


def tickets_import(
    *,
    stream_or_path: str | Path | IO[bytes],
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str | None = None,
    team_map: Mapping[str, str] | None = None,
    create_teams: bool = False,
    source: str = Ticket.Source.IMPORT,
    user: AbstractBaseUser | None = None,
) -> ImportReport:
    """Import tickets from a CSV/JSONL path or binary stream; on any error write nothing."""
    report = ImportReport()
    if source not in Ticket.Source.values:
        known = ", ".join(Ticket.Source.values)
        report.add_error(None, f"Unknown source '{source}'; use one of {known}.")
    try:
        fmt = detect_format(name=_source_name(stream_or_path), fmt=fmt)
    except SwitchboardError as exc:
        report.add_error(None, exc.message)
    mapping = _validate_map(team_map, report)
    data = _read_limited(stream_or_path, report) if report.ok else None
    decoded = _decode(data, report) if data is not None else None
    if decoded is None:
        return report
    resolver = _TeamResolver(mapping, create_teams)
    resolver.check_map_targets(report)
    accepted = _collect(_parse(decoded, fmt, text_column, label_column, report), resolver, report)
    resolver.report_failures(report)
    if not report.ok:
        return report
    existing = _existing_hashes([item[1] for item in accepted])
    fresh = [item for item in accepted if item[1] not in existing]
    report.duplicates += len(accepted) - len(fresh)
    _write(fresh, resolver, source, user, report)
    return report


@transaction.atomic
def _write(fresh, resolver: _TeamResolver, source: str, user, report: ImportReport) -> None:
    for team in resolver.planned.values():
        team.save()
        report.created_teams.append(team.name)
    now = timezone.now()
    labeller = user if user is not None and user.is_authenticated else None
    tickets = [
        Ticket(
            text=text,
            text_hash=digest,
            team=team,
            no_intent=no_intent,
            source=source,
            labelled_by=labeller if team or no_intent else None,
            labelled_at=now if team or no_intent else None,
        )
        for text, digest, team, no_intent in fresh
    ]
    Ticket.objects.bulk_create(tickets, batch_size=_CREATE_BATCH)
    counts = Counter(team.name for _, _, team, _ in fresh if team is not None)
    report.per_team = dict(counts)
    report.not_a_request = sum(1 for _, _, team, no_intent in fresh if team is None and no_intent)
    report.unlabelled = sum(1 for _, _, team, no_intent in fresh if team is None and not no_intent)
    report.imported = len(tickets)
