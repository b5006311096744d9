"""Team admin: who is on each team, how many labelled tickets it has, its triage threshold;
merging a team into another, and what the serving model does not know of today's teams."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from chatbot.core.errors import SwitchboardError
from routing.models import ModelVersion, Team
from routing.teams import model_version_team_gaps, team_merge


class MergeForm(forms.Form):
    into = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        label="Merge into",
        help_text="Its tickets and open conversations move there; every model routes its label there.",
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["into"].queryset = Team.objects.filter(active=True, merged_into__isnull=True).exclude(pk=team.pk)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active", "merged_into", "member_count", "labelled_count", "triage_threshold"]
    list_display_links = ["slug", "name"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]
    fields = ["name", "slug", "description", "active", "merged_into", "triage_threshold", "members"]
    change_form_template = "admin/routing/team/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        # The slug is the trained models' label: renaming a team changes its name only.
        return ["slug", "merged_into"] if obj is not None else ["merged_into"]

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    def get_urls(self):
        merge = self.admin_site.admin_view(self.merge_view)
        return [path("<int:pk>/merge/", merge, name="routing_team_merge"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
        gaps = model_version_team_gaps(version=active) if active is not None else None
        if gaps is not None and gaps.needs_new_run:
            messages.warning(
                request,
                (
                    f"The serving model (version {active.pk}) was trained before {', '.join(gaps.new_teams)} existed: "
                    "nothing is routed there until a new training run."
                ),
            )
        return super().changelist_view(request, extra_context)

    def merge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Pick the team to merge this one into; POST merges it."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        team = get_object_or_404(Team, pk=pk)
        form = MergeForm(request.POST or None, team=team)
        if request.method == "POST" and form.is_valid():
            try:
                into = team_merge(team=team, into=form.cleaned_data["into"], user=request.user)
            except SwitchboardError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{team.name} is merged into {into.name}; its label routes there now.")
                return HttpResponseRedirect(reverse("admin:routing_team_change", args=[into.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "team": team,
            "form": form,
            "title": f"Merge {team.name} into another team",
        }
        return TemplateResponse(request, "admin/routing/team/merge.html", context)

    def get_queryset(self, request):
        # distinct=True: two joined relations would otherwise multiply each other's counts.
        return (
            super()
            .get_queryset(request)
            .annotate(
                _member_count=Count("members", distinct=True),
                _labelled_count=Count("tickets", filter=Q(tickets__excluded=False), distinct=True),
            )
        )

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, obj: Team) -> int:
        return obj._member_count

    @admin.display(description="labelled tickets", ordering="_labelled_count")
    def labelled_count(self, obj: Team) -> int:
        return obj._labelled_count
