"""The demo page (a product page with the chat widget), the agent console page, and /metrics."""

from __future__ import annotations

import hmac

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed

from chatbot import selectors
from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.core.rest import CachedTokenAuthentication


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
    groups = [
        ("Your teams", [t for t in choices if t.pk in member_of]),
        ("Other teams", [t for t in choices if t.pk not in member_of]),
    ]
    team_groups = [(label, [{"slug": t.slug, "name": t.name} for t in group]) for label, group in groups if group]
    return render(request, "chatbot/agent.html", {"teams": teams, "team_groups": team_groups})


@require_GET
def metrics_page(request: HttpRequest) -> HttpResponse:
    """Prometheus' text exposition, for METRICS_TOKEN as a Bearer token or a staff user's API token."""
    if not _metrics_allowed(request.headers.get("Authorization", "")):
        detail = "Send 'Authorization: Bearer <METRICS_TOKEN>' or a staff user's 'Authorization: Token <key>'."
        return JsonResponse(
            {"code": "not_authenticated", "detail": detail},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


def _metrics_allowed(header: str) -> bool:
    scheme, _, credential = header.partition(" ")
    expected = str(setting("METRICS_TOKEN") or "")
    if scheme.lower() == "bearer":
        return bool(expected) and hmac.compare_digest(credential.strip().encode(), expected.encode())
    if scheme.lower() != CachedTokenAuthentication.keyword.lower():
        return False
    try:
        user, _ = CachedTokenAuthentication().authenticate_credentials(credential.strip())
    except AuthenticationFailed:
        return False
    return bool(user.is_staff)
