"""Drift watch: is live traffic drifting away from what the active model learned?

Two signals per day and team: the share of routed conversations the active model sent to triage
(RoutingEvent, shadow=False; a triaged event's team is the model's best guess) and agent
corrections (correction tickets, counted for the team the agent chose). A team whose corrections
this week reach DRIFT_FACTOR x last week's (and at least DRIFT_MIN_CORRECTIONS) raises a warning;
``drift_check`` can then start a training run (DRIFT_AUTO_TRAIN, for cron).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError
from chatbot.models import RoutingEvent
from finetune.models import Ticket, TrainingRun
from finetune.training_queue import training_run_start
from routing.models import ModelVersion, Team


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class DriftCounts:
    """Routed and triaged messages and agent corrections, for one day (and one team or all)."""

    routed: int
    triaged: int
    corrections: int

    @property
    def triage_share(self) -> float | None:
        return _rate(self.triaged, self.routed)

    @property
    def correction_rate(self) -> float | None:
        """Corrections per conversation the model routed."""
        return _rate(self.corrections, self.routed)


@dataclass(frozen=True)
class TeamDay(DriftCounts):
    slug: str
    name: str


@dataclass(frozen=True)
class DriftDay(DriftCounts):
    day: date
    teams: list[TeamDay] = field(default_factory=list)


def _routing_counts(start: datetime) -> dict[tuple[date, int | None], tuple[int, int]]:
    rows = (
        RoutingEvent.objects.filter(shadow=False, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "team_id")
        .annotate(routed=Count("id"), triaged=Count("id", filter=Q(triage=True)))
    )
    return {(row["day"], row["team_id"]): (row["routed"], row["triaged"]) for row in rows}


def _correction_counts(start: datetime) -> dict[tuple[date, int | None], int]:
    rows = (
        Ticket.objects.filter(source=Ticket.Source.CORRECTION, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "team_id")
        .annotate(n=Count("id"))
    )
    return {(row["day"], row["team_id"]): row["n"] for row in rows}


def drift_daily(*, days: int = 14, today: date | None = None) -> list[DriftDay]:
    """One row per day (oldest first, ``today`` included), each with a row per active team."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    routing, corrections = _routing_counts(start), _correction_counts(start)
    teams = list(Team.objects.filter(active=True).order_by("name"))
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        per_team = [
            TeamDay(
                slug=team.slug,
                name=team.name,
                routed=routing.get((day, team.pk), (0, 0))[0],
                triaged=routing.get((day, team.pk), (0, 0))[1],
                corrections=corrections.get((day, team.pk), 0),
            )
            for team in teams
        ]
        day_routing = [counts for (d, _), counts in routing.items() if d == day]
        result.append(
            DriftDay(
                day=day,
                routed=sum(r for r, _ in day_routing),
                triaged=sum(t for _, t in day_routing),
                corrections=sum(n for (d, _), n in corrections.items() if d == day),
                teams=per_team,
            )
        )
    return result


@dataclass(frozen=True)
class DriftWarning:
    team: str
    team_name: str
    this_week: int
    last_week: int
    new_labels: int
    message: str


def labels_since_last_model() -> int:
    """Labelled, usable tickets added or relabelled since the newest model version was created."""
    labelled = Ticket.objects.filter(team__isnull=False, excluded=False)
    newest = ModelVersion.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    if newest is not None:
        labelled = labelled.filter(labelled_at__gt=newest)
    return labelled.count()


def _growth(this_week: int, last_week: int) -> str:
    if last_week == 0:
        return f"went from 0 to {this_week}"
    ratio = this_week / last_week
    if 2 <= ratio < 3:
        return "doubled"
    if 3 <= ratio < 4:
        return "tripled"
    return f"rose {ratio:.1f}x"


def _weekly_corrections(now: datetime) -> dict[int, tuple[int, int]]:
    week = timedelta(days=7)
    rows = (
        Ticket.objects.filter(source=Ticket.Source.CORRECTION, team__isnull=False, created_at__gte=now - 2 * week)
        .values("team_id")
        .annotate(
            this=Count("id", filter=Q(created_at__gte=now - week)),
            last=Count("id", filter=Q(created_at__lt=now - week)),
        )
    )
    return {row["team_id"]: (row["this"], row["last"]) for row in rows}


def drift_warnings(*, now: datetime | None = None) -> list[DriftWarning]:
    """Teams whose corrections in the last 7 days reached DRIFT_FACTOR x the 7 days before."""
    counts = _weekly_corrections(now or timezone.now())
    factor, minimum = float(setting("DRIFT_FACTOR")), int(setting("DRIFT_MIN_CORRECTIONS"))
    flagged = {pk: c for pk, c in counts.items() if c[0] >= minimum and c[0] >= factor * c[1]}
    if not flagged:
        return []
    new_labels = labels_since_last_model()
    warnings = []
    for team in Team.objects.filter(pk__in=flagged).order_by("name"):
        this_week, last_week = flagged[team.pk]
        message = (
            f"Corrections for {team.name} {_growth(this_week, last_week)} this week "
            f"({this_week} vs {last_week} the week before) — {new_labels} new labels since the last model; "
            "train now?"
        )
        warnings.append(DriftWarning(team.slug, team.name, this_week, last_week, new_labels, message))
    return warnings


@dataclass(frozen=True)
class DriftCheck:
    warnings: list[DriftWarning]
    # The run auto-train started, or why it did not (None when auto-train was off or nothing drifted).
    run: TrainingRun | None = None
    problem: str | None = None


def drift_check(*, auto_train: bool | None = None, user=None, now: datetime | None = None) -> DriftCheck:
    """Compute the warnings; with auto-train (default: DRIFT_AUTO_TRAIN) start a run when any fire."""
    warnings = drift_warnings(now=now)
    auto_train = setting("DRIFT_AUTO_TRAIN") if auto_train is None else auto_train
    if not warnings or not auto_train:
        return DriftCheck(warnings=warnings)
    if warnings[0].new_labels == 0:
        return DriftCheck(
            warnings=warnings, problem="No new labels since the last model: training would change nothing."
        )
    try:
        run = training_run_start(user=user)
    except SwitchboardError as exc:
        return DriftCheck(warnings=warnings, problem=exc.message)
    return DriftCheck(warnings=warnings, run=run)
