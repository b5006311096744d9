"""Request validation and response shapes for the REST API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from rest_framework import serializers

from routing.models import ModelVersion, Team

MAX_ROUTE_BATCH = 64
MAX_TICKET_BATCH = 500


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would turn 123 into "123"."""

    default_error_messages = {"invalid": "Must be a string, got {type}."}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", type=type(data).__name__)
        return super().to_internal_value(data)


class RouteInputSerializer(serializers.Serializer):
    text = StrictCharField(required=False, help_text="One message. Send this or `texts`.")
    texts = serializers.ListField(
        child=StrictCharField(),
        required=False,
        min_length=1,
        max_length=MAX_ROUTE_BATCH,
        help_text=f"1..{MAX_ROUTE_BATCH} messages, answered by one model version.",
    )

    def validate(self, attrs):
        if ("text" in attrs) == ("texts" in attrs):
            raise serializers.ValidationError("Send exactly one of `text` (a string) or `texts` (a list).")
        return attrs


class PredictionSerializer(serializers.Serializer):
    team = serializers.CharField(allow_null=True, help_text="Null for no_intent, out_of_scope, unsupported_language.")
    team_name = serializers.CharField(allow_null=True)
    confidence = serializers.FloatField()
    triage = serializers.BooleanField(help_text="True for low_confidence, out_of_scope and unsupported_language.")
    reason = serializers.ChoiceField(
        choices=["routed", "no_intent", "out_of_scope", "unsupported_language", "low_confidence"]
    )
    language = serializers.CharField(allow_null=True, help_text="ISO 639-1 code when identified confidently.")
    scores = serializers.DictField(child=serializers.FloatField())
    model_version = serializers.CharField()


class RouteBatchSerializer(serializers.Serializer):
    results = PredictionSerializer(many=True)
    model_version = serializers.CharField()


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "active", "triage_threshold"]


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


class ModelVersionSerializer(serializers.ModelSerializer):
    promoted_by = serializers.CharField(source="promoted_by.get_username", allow_null=True, default=None)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "state",
            "artifact_dir",
            "labels",
            "test_accuracy",
            "temperature",
            "proposed_triage_threshold",
            "created_at",
            "promoted_at",
            "promoted_by",
            "shadow_since",
        ]


class ModelVersionDetailSerializer(ModelVersionSerializer):
    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "sha256", "metrics", "card"]


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded", "no_model", "unavailable"])
    serving_version = serializers.CharField(allow_null=True)
    active_version = serializers.CharField(allow_null=True)
    problem = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable.")
    detail = serializers.CharField(help_text="What was wrong and how to fix it.")
    errors = serializers.JSONField(required=False, help_text="Per-field (or per-item) problems.")
