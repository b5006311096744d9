"""Reads: model versions, teams (list, look up by slug), router health."""

from __future__ import annotations

from django.db.models import QuerySet

from chatbot.core.errors import NotFoundError, SwitchboardError
from routing.models import ModelVersion, Team


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()


def model_version_list() -> QuerySet[ModelVersion]:
    """Newest first, without the (large) metrics and card."""
    return ModelVersion.objects.defer("metrics", "card").order_by("-id")


def model_version_get(*, pk: int) -> ModelVersion:
    version = ModelVersion.objects.filter(pk=pk).first()
    if version is None:
        raise NotFoundError(f"No model version {pk}; GET /api/v1/models lists them.")
    return version


def team_list() -> QuerySet[Team]:
    return Team.objects.order_by("slug")


def team_get_by_slug(*, slug: object) -> Team:
    if not isinstance(slug, str) or not slug:
        raise SwitchboardError("team must be a team slug string.", code="invalid_team")
    team = Team.objects.select_related("merged_into").filter(slug=slug).first()
    if team is None:
        known = ", ".join(Team.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise NotFoundError(f"Unknown team '{slug}'. Known teams: {known}.", code="unknown_team")
    return team.merged_into or team  # a merged team's slug means the team it was merged into


def router_health() -> dict:
    """This process's view: {"status": "ok"|"degraded"|"no_model", "serving_version", "active_version", "problem"}.

    degraded: the active version could not be loaded and an older one is still serving.
    """
    from routing.router import get_router  # late: the router loads onnxruntime, team lookups need not

    return get_router().health()
