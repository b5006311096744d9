"""DRF serializers for ticket ingest and training runs (input validation and output shape)."""

from __future__ import annotations

from dataclasses import fields

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from finetune.ml.config import TrainConfig
from finetune.models import TrainingRun
from routing.serializers import StrictCharField

MAX_TICKET_BATCH = 500

JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def training_config_schema() -> dict:
    """TrainConfig's fields as a JSON Schema object: its keys and types, no other key."""
    properties = {field.name: {"type": JSON_TYPES[str(field.type)]} for field in fields(TrainConfig)}
    return {"type": "object", "properties": properties, "additionalProperties": False}


# Values are checked by TrainConfig itself (training_config_build: 400 invalid_config).
@extend_schema_field(training_config_schema())
class TrainingConfigField(serializers.DictField):
    """Training options: a JSON object whose keys are TrainConfig's fields."""


class TrainingRunStartSerializer(serializers.Serializer):
    config = TrainingConfigField(
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
