"""Team admin: who is on each team, how many labelled tickets it has, its triage threshold."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q

from routing.models import Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active", "member_count", "labelled_count", "triage_threshold"]
    list_display_links = ["slug", "name"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]
    fields = ["name", "slug", "description", "active", "triage_threshold", "members"]

    def get_queryset(self, request):
        # distinct=True: two joined relations would otherwise multiply each other's counts.
        return super().get_queryset(request).annotate(
            _member_count=Count("members", distinct=True),
            _labelled_count=Count("tickets", filter=Q(tickets__excluded=False), distinct=True),
        )

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, obj: Team) -> int:
        return obj._member_count

    @admin.display(description="labelled tickets", ordering="_labelled_count")
    def labelled_count(self, obj: Team) -> int:
        return obj._labelled_count
