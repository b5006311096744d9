"""Admin "label next": one ticket at a time, most informative first, driven from the keyboard.

Mounted by the project URLconf before the admin site:
``path("admin/finetune/label-next/", include("chatbot.learning.label_next"))``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from chatbot.core.errors import SwitchboardError
from finetune.labelling import label_next_pick, ticket_exclude_one, ticket_label_one
from routing.models import Team

app_name = "label_next"

SKIPPED_KEY = "label_next_skipped"
LAST_KEY = "label_next_last"


def _team_choices(suggested: str | None) -> list[dict]:
    teams = Team.objects.filter(active=True).order_by("name")
    return [
        {"slug": team.slug, "name": team.name, "key": str(n) if n <= 9 else "", "suggested": team.slug == suggested}
        for n, team in enumerate(teams, start=1)
    ]


def _render(request: HttpRequest) -> HttpResponse:
    suggestion = label_next_pick(
        skipped=request.session.get(SKIPPED_KEY, []), last_shown_id=request.session.get(LAST_KEY)
    )
    suggested = suggestion.score.team if suggestion and suggestion.score else None
    context = {
        **admin.site.each_context(request),
        "title": "Label next ticket",
        "suggestion": suggestion,
        "teams": _team_choices(suggested),
        "skipped_count": len(request.session.get(SKIPPED_KEY, [])),
    }
    return TemplateResponse(request, "admin/finetune/label_next.html", context)


def _act(request: HttpRequest) -> None:
    action = request.POST.get("action", "label")
    ticket_id = request.POST.get("ticket", "")
    if not ticket_id.isdecimal():
        raise SwitchboardError(f"ticket must be a ticket id, got {ticket_id!r}.", code="invalid_ticket")
    ticket_id = int(ticket_id)
    if action == "skip":
        request.session[SKIPPED_KEY] = [*request.session.get(SKIPPED_KEY, []), ticket_id]
    elif action == "exclude":
        ticket_exclude_one(ticket_id=ticket_id)
    elif action == "label":
        ticket_label_one(ticket_id=ticket_id, team_slug=request.POST.get("team", ""), user=request.user)
    else:
        raise SwitchboardError(f"Unknown action {action!r}: use label, skip or exclude.", code="invalid_action")
    request.session[LAST_KEY] = ticket_id


def label_next_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("finetune.change_ticket"):
        raise PermissionDenied
    if request.method == "POST":
        if request.POST.get("action") == "reset_skips":
            request.session[SKIPPED_KEY] = []
        else:
            try:
                _act(request)
            except SwitchboardError as exc:
                messages.error(request, exc.message)
        return redirect("label_next:index")
    return _render(request)


urlpatterns = [path("", admin.site.admin_view(label_next_view), name="index")]
