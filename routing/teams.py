"""The teams a model routes into, and how they may change after the model was trained.

A model's labels are the team slugs of its training run. So that a trained model keeps routing:
- a team is **renamed** by its name; its slug (the label) never changes once the team exists;
- a team **merged** into another keeps its row and slug, inactive, with ``merged_into`` set: its
  label routes to the target (probabilities added up), its tickets are relabelled and its open
  conversations move, so the next run learns one class;
- a team **split** (or any new team) has no label in the models trained before it existed:
  nothing is routed to it until a new run, which ``model_version_team_gaps`` says in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.dispatch import Signal

from chatbot.core.errors import ConflictError, SwitchboardError
from finetune.ml.artifact_format import NO_INTENT
from routing.loaded_model import TeamInfo
from routing.models import ModelVersion, Team

# Sent inside the merge's transaction with team=, into= and user=: the apps that hold rows
# labelled with a team (tickets, conversations) move them to ``into``.
team_merged = Signal()


def team_directory() -> dict[str, TeamInfo]:
    """Every team slug (a model label) → the team a prediction for it goes to, merges resolved."""
    rows = {
        pk: (slug, name, threshold, active, merged_into)
        for pk, slug, name, threshold, active, merged_into in Team.objects.values_list(
            "pk", "slug", "name", "triage_threshold", "active", "merged_into_id"
        )
    }
    directory = {}
    for pk, (slug, *_rest) in rows.items():
        target = _final(pk, rows)
        target_slug, name, threshold, active, _ = rows[target]
        directory[slug] = TeamInfo(
            name=name, triage_threshold=threshold, active=active, routes_to=None if target == pk else target_slug
        )
    return directory


def _final(pk: int, rows: dict) -> int:
    seen = {pk}
    while rows[pk][4] is not None and rows[pk][4] not in seen:  # team_merge keeps chains one step long
        pk = rows[pk][4]
        seen.add(pk)
    return pk


@transaction.atomic
def team_merge(*, team: Team, into: Team, user: AbstractBaseUser | None) -> Team:
    """Merge ``team`` into ``into``: its label routes there from now on, with every model version.

    ``team`` becomes inactive (its members' consoles drop its inbox); its tickets and open
    conversations move to ``into`` (receivers of ``team_merged``); teams merged into it before
    now point at ``into``. Returns ``into``.
    """
    locked = {row.pk: row for row in Team.objects.select_for_update().filter(pk__in=[team.pk, into.pk])}
    source, target = locked[team.pk], locked[into.pk]
    if source.pk == target.pk:
        raise SwitchboardError(f"Cannot merge {source.slug} into itself.", code="same_team")
    if source.merged_into_id is not None:
        raise ConflictError(f"Team {source.slug} is already merged into another team.", code="already_merged")
    if target.merged_into_id is not None or not target.active:
        raise SwitchboardError(
            f"Team {target.slug} is inactive or merged itself; merge into an active team.", code="inactive_team"
        )
    Team.objects.filter(merged_into=source).update(merged_into=target)
    source.merged_into, source.active = target, False
    source.save(update_fields=["merged_into", "active"])
    team_merged.send(sender=Team, team=source, into=target, user=user)
    return target


@dataclass(frozen=True)
class TeamGaps:
    """Where a model version's labels and today's teams disagree."""

    new_teams: list[str]  # active teams the model has no label for: nothing routes there yet
    missing_teams: list[str]  # labels whose team was deleted: such answers go to triage
    merged: dict[str, str]  # label → the team it now routes to

    @property
    def needs_new_run(self) -> bool:
        return bool(self.new_teams)


def model_version_team_gaps(*, version: ModelVersion) -> TeamGaps:
    labels = [label for label in version.labels if label != NO_INTENT]
    directory = team_directory()
    active = Team.objects.filter(active=True, merged_into__isnull=True).values_list("slug", flat=True)
    routed_to = {directory[label].routes_to or label for label in labels if label in directory}
    return TeamGaps(
        new_teams=sorted(set(active) - set(labels) - routed_to),
        missing_teams=sorted(label for label in labels if label not in directory),
        merged={
            label: directory[label].routes_to for label in labels if label in directory and directory[label].routes_to
        },
    )
