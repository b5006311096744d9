"""Conversations in the admin: read the transcript and the routing decisions behind it."""

from django.contrib import admin

from chatbot.models import Conversation, Message, RoutingEvent


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "sender", "author", "text", "client_id")
    readonly_fields = fields
    extra = 0
    can_delete = False


class RoutingEventInline(admin.TabularInline):
    model = RoutingEvent
    fields = ("created_at", "model_version", "shadow", "team", "confidence", "triage")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "team", "predicted_team", "confidence", "model_version", "updated_at")
    list_filter = ("status", "team", "predicted_team")
    search_fields = ("messages__text",)
    # Read-only: reassigning and closing happen in the agent console, through the services that
    # write the correction ticket and tell the customer; an admin edit would skip all of that.
    readonly_fields = (
        "status",
        "team",
        "predicted_team",
        "confidence",
        "model_version",
        "routed_at",
        "assigned_agent",
        "created_at",
        "updated_at",
        "closed_at",
    )
    exclude = ("token",)  # the customer's secret: nobody needs to read it
    inlines = [MessageInline, RoutingEventInline]

    def has_add_permission(self, request):
        return False

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        # Searching messages joins one row per match: keep each conversation once.
        return queryset.distinct(), False


@admin.register(RoutingEvent)
class RoutingEventAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "model_version", "shadow", "team", "confidence", "triage", "created_at")
    list_filter = ("shadow", "triage", "team", "model_version")
    readonly_fields = (
        "conversation",
        "message",
        "model_version",
        "shadow",
        "team",
        "confidence",
        "triage",
        "created_at",
    )

    def has_add_permission(self, request):
        return False
