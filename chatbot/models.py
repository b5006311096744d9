from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q


def new_conversation_token() -> str:
    return secrets.token_urlsafe(32)


class Conversation(models.Model):
    """A customer's chat: waiting (no intent yet, routed_at None), in a team's inbox, or in triage
    (routed, no team)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    # The customer's secret: whoever holds it reads and writes this conversation, nobody else.
    token = models.CharField(max_length=64, unique=True, default=new_conversation_token)
    # sha256 of the widget's secret conversation key, sent with its first message: a resend of
    # that message from a socket without the token (the answer was lost) finds this conversation.
    start_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    team = models.ForeignKey(
        "routing.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    # What the router said about the first message.
    predicted_team = models.ForeignKey(
        "routing.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confidence = models.FloatField(null=True, blank=True)
    model_version = models.ForeignKey(
        "routing.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When it first left the waiting list (for a team's inbox or triage); None while waiting.
    routed_at = models.DateTimeField(null=True, blank=True)
    # Why it is where it is: the last routing decision's reason (routing.loaded_model.Prediction).
    routing_reason = models.CharField(max_length=24, blank=True)
    language = models.CharField(max_length=8, blank=True)
    # After the first agent reply the model never moves the conversation; only people do.
    agent_replied_at = models.DateTimeField(null=True, blank=True)
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["status", "team"])]
        # Non-staff agents see and act on triage conversations only with this (chatbot.selectors).
        permissions = [("work_triage", "Can work the triage queue")]

    def __str__(self) -> str:
        return f"Conversation #{self.pk}"


class Message(models.Model):
    class Sender(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=8, choices=Sender.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    # Chosen by the sending client: a resend with the same id is the same message.
    client_id = models.CharField(max_length=64, null=True, blank=True)
    # A customer message as the router scored it alone: False = no intent (a greeting, "thanks").
    carries_intent = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return self.text[:80]


class RoutingEvent(models.Model):
    """Every routing decision on live traffic, by the active model or a shadow candidate.

    Drift watch (triage share) and shadow evaluation (agreement, accuracy on corrected
    conversations) are computed from these rows.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="routing_events")
    message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="+")
    model_version = models.ForeignKey(
        "routing.ModelVersion", null=True, on_delete=models.SET_NULL, related_name="routing_events"
    )
    shadow = models.BooleanField(default=False)
    team = models.ForeignKey("routing.Team", null=True, on_delete=models.SET_NULL, related_name="+")
    confidence = models.FloatField(null=True)
    triage = models.BooleanField(default=False)
    reason = models.CharField(max_length=24, blank=True)
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{'shadow ' if self.shadow else ''}route of conversation {self.conversation_id}"
