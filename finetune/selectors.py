"""Reads over tickets: label counts, training readiness, CSV export rows."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from chatbot.core.conf import setting
from finetune.models import Ticket
from routing.models import Team

EXPORT_COLUMNS = [
    "id",
    "text",
    "team",
    "source",
    "external_id",
    "labelled_by",
    "labelled_at",
    "excluded",
    "split",
    "created_at",
    # Appended last so readers of the older columns by position keep working; import_tickets reads it.
    "no_intent",
]
# Spreadsheets execute cells that start with these; a leading quote keeps them text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class TeamLabelCount:
    slug: str
    name: str
    count: int


@dataclass(frozen=True)
class TrainingReadiness:
    ok: bool
    message: str
    # Active team slug -> labelled, non-excluded tickets.
    counts: dict[str, int] = field(default_factory=dict)
    minimum: int = 0


def team_label_counts(*, active_only: bool = True) -> list[TeamLabelCount]:
    """Labelled, non-excluded tickets per team (teams with none included), ordered by name."""
    teams = Team.objects.filter(active=True) if active_only else Team.objects.all()
    rows = (
        teams.annotate(labelled=Count("tickets", filter=Q(tickets__excluded=False)))
        .order_by("name")
        .values_list("slug", "name", "labelled")
    )
    return [TeamLabelCount(slug=slug, name=name, count=count) for slug, name, count in rows]


def training_readiness() -> TrainingReadiness:
    """Whether every active team has the minimum number of labelled tickets, said plainly."""
    minimum = setting("MIN_TICKETS_PER_TEAM")
    counts = team_label_counts()
    by_slug = {row.slug: row.count for row in counts}
    if len(counts) < 2:
        message = (
            f"Not ready: a model needs at least two active teams; there are {len(counts)}. "
            "Add teams in the Team admin or import tickets with 'create missing teams'."
        )
        return TrainingReadiness(ok=False, message=message, counts=by_slug, minimum=minimum)
    short = [row for row in counts if row.count < minimum]
    if short:
        listed = ", ".join(f"{row.name} has {row.count}" for row in short)
        message = f"Not ready: {listed} (need {minimum} each)."
        return TrainingReadiness(ok=False, message=message, counts=by_slug, minimum=minimum)
    message = f"Ready to train: every team has at least {minimum} labelled tickets."
    return TrainingReadiness(ok=True, message=message, counts=by_slug, minimum=minimum)


def ticket_no_intent_texts() -> list[str]:
    """Texts labelled "not a request" (no team, not excluded), oldest first: the no-intent class's
    own lines beside the shipped corpus."""
    rows = Ticket.objects.filter(no_intent=True, team__isnull=True, excluded=False).order_by("id")
    return list(rows.values_list("text", flat=True))


def csv_safe_cell(value: object) -> str:
    """Render a value for CSV, defusing spreadsheet formula injection."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def ticket_export_rows(*, tickets: QuerySet[Ticket] | None = None) -> Iterator[list[str]]:
    """The header, then one safe row per ticket; iterates in chunks so memory stays flat."""
    queryset = Ticket.objects.all() if tickets is None else tickets
    queryset = queryset.select_related("team", "labelled_by").order_by("id")
    yield list(EXPORT_COLUMNS)
    for ticket in queryset.iterator(chunk_size=2000):
        values = [
            ticket.pk,
            ticket.text,
            ticket.team.slug if ticket.team else "",
            ticket.source,
            ticket.external_id,
            ticket.labelled_by.get_username() if ticket.labelled_by else "",
            ticket.labelled_at,
            "1" if ticket.excluded else "0",
            ticket.split,
            ticket.created_at,
            "1" if ticket.no_intent else "0",
        ]
        yield [csv_safe_cell(value) for value in values]


class _LineBuffer:
    """A write() target that hands back what it was given, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Encode rows as CSV text, one line at a time (for StreamingHttpResponse or a file)."""
    writer = csv.writer(_LineBuffer())
    for row in rows:
        yield writer.writerow(row)
