"""Import tickets from CSV or JSONL: validate every row first, then write all or nothing.

One service, :func:`tickets_import`, serves the admin upload form and ``manage.py
import_tickets``. A ``no_intent`` column (CSV) or key (JSONL), as ``export_tickets`` writes it,
marks rows "not a request"; files without it import as before. Duplicates (same normalised text, within the file or already stored) are
skipped and counted; any bad row, unknown label or unreadable file means nothing is written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from chatbot.core.errors import SwitchboardError
from chatbot.core.text import text_hash, ticket_text_validate
from finetune.models import Ticket
from finetune.ticket_files import ImportReport, TicketRow, ticket_rows
from routing.models import Team

_LOOKUP_CHUNK = 900  # stays under SQLite's bound-parameter limit
_CREATE_BATCH = 1000


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


def _collect(
    rows: Iterable[TicketRow | None], resolver: _TeamResolver, report: ImportReport
) -> list[tuple[str, str, Team | None, bool]]:
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
    mapping = _validate_map(team_map, report)
    rows = ticket_rows(
        stream_or_path=stream_or_path, fmt=fmt, text_column=text_column, label_column=label_column, report=report
    )
    if rows is None:
        return report
    resolver = _TeamResolver(mapping, create_teams)
    resolver.check_map_targets(report)
    accepted = _collect(rows, resolver, report)
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
