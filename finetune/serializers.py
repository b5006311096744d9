"""DRF serializers for ticket ingest and training runs (input validation and output shape)."""

from __future__ import annotations

from rest_framework import serializers

from finetune.models import TrainingRun
from routing.serializers import StrictCharField

MAX_TICKET_BATCH = 500


class TrainingRunStartSerializer(serializers.Serializer):
    config = serializers.DictField(
        required=False,
        allow_empty=True,
        help_text='Training options overriding the defaults, e.g. {"epochs": 3, "method": "lora"}. '
        "Unknown keys are refused.",
    )


class TrainingRunSerializer(serializers.ModelSerializer):
    started_by = serializers.CharField(source="started_by.get_username", allow_null=True, default=None)
    model_version = serializers.IntegerField(source="model_version_id", allow_null=True)
    finished = serializers.BooleanField(source="is_finished")

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "status",
            "finished",
            "stage",
            "percent",
            "eta_seconds",
            "cancel_requested",
            "config",
            "metrics",
            "error",
            "log",
            "started_by",
            "model_version",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]
        read_only_fields = fields


class TicketInputSerializer(serializers.Serializer):
    text = StrictCharField()
    team = StrictCharField(required=False, allow_null=True, help_text="Team slug, when the ticket is labelled.")
    external_id = StrictCharField(
        required=False, allow_null=True, max_length=255, help_text="Your helpdesk's id: a resend is a no-op."
    )


class TicketBulkInputSerializer(serializers.Serializer):
    tickets = TicketInputSerializer(many=True, allow_empty=False, max_length=MAX_TICKET_BATCH)


class TicketResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when this external_id was already ingested.")
    team = serializers.CharField(allow_null=True)
    external_id = serializers.CharField(allow_null=True)


class TicketBulkResultSerializer(serializers.Serializer):
    results = TicketResultSerializer(many=True)
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
