"""DRF serializers for training runs (input validation and output shape)."""

from __future__ import annotations

from rest_framework import serializers

from finetune.models import TrainingRun


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
