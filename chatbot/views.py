"""The demo page (a product page with the chat widget) and the agent console page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chatbot import selectors


def demo_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chatbot/demo.html")


@login_required(login_url="agent-login")
def agent_console(request: HttpRequest) -> HttpResponse:
    access = selectors.agent_access_of_user(user=request.user)
    if access.refusal:
        raise PermissionDenied(selectors.ACCESS_REFUSALS[access.refusal])
    teams = [{"slug": team.slug, "name": team.name} for team in access.teams]
    # The move-to list in two groups: with 150 teams an agent finds their own first.
    member_of = set(request.user.teams.values_list("pk", flat=True))
    choices = selectors.team_choices()
    groups = [("Your teams", [t for t in choices if t.pk in member_of]),
              ("Other teams", [t for t in choices if t.pk not in member_of])]
    team_groups = [(label, [{"slug": t.slug, "name": t.name} for t in group]) for label, group in groups if group]
    return render(request, "chatbot/agent.html", {"teams": teams, "team_groups": team_groups})
