"""Request validation and response shapes for the REST API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from routing.models import ModelVersion, Team

MAX_ROUTE_BATCH = 64
MAX_CONVERSATION_TURNS = 200
REASONS = ["routed", "no_intent", "out_of_scope", "unsupported_language", "low_confidence", "no_model"]


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


# Empty and whitespace-only texts are refused by ticket_text_validate (400 empty_text, naming
# texts[i] / messages[i]), as the chat refuses them; the schema states the rule.
@extend_schema_field({"type": "string", "minLength": 1, "pattern": r"\S"})
class TextField(StrictCharField):
    """A message's text: a string with something besides whitespace in it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_blank", False)  # for the schema; "" itself is left to the service
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        return data if data == "" else super().run_validation(data)


ROUTE_INPUTS = ("text", "texts", "messages")


class RouteInputSerializer(serializers.Serializer):
    """Exactly one of `text`, `texts` or `messages`; every text non-empty after trimming."""

    text = TextField(required=False, help_text="One message. Send exactly one of `text`, `texts`, `messages`.")
    texts = serializers.ListField(
        child=TextField(),
        required=False,
        min_length=1,
        max_length=MAX_ROUTE_BATCH,
        help_text=f"1..{MAX_ROUTE_BATCH} separate messages, each routed alone, answered by one model version.",
    )
    messages = serializers.ListField(
        child=TextField(),
        required=False,
        min_length=1,
        max_length=MAX_CONVERSATION_TURNS,
        help_text=(
            f"One conversation's customer turns, oldest first (1..{MAX_CONVERSATION_TURNS}), routed as the chat "
            "routes a conversation: turns without an intent (greetings, thanks) are left out, the rest read together; "
            "when that does not route it, the newest two turns are read together (a question typed over two messages)."
        ),
    )

    def validate(self, attrs):
        given = [name for name in ROUTE_INPUTS if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                "Send exactly one of `text` (a string), `texts` (a list of messages) or `messages` "
                f"(one conversation's turns); got {', '.join(given) or 'none of them'}."
            )
        return attrs


class RouteInputSchema(OpenApiSerializerExtension):
    """RouteInputSerializer's schema states what its validate() enforces: exactly one of ROUTE_INPUTS."""

    target_class = RouteInputSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "oneOf": [{"required": [name]} for name in ROUTE_INPUTS]}


class PredictionSerializer(serializers.Serializer):
    team = serializers.CharField(
        allow_null=True, help_text="Team slug; null for no_intent, out_of_scope, unsupported_language and no_model."
    )
    team_name = serializers.CharField(allow_null=True)
    confidence = serializers.FloatField(
        help_text="Calibrated probability of the best team (of no intent for no_intent)."
    )
    triage = serializers.BooleanField(
        help_text="True when a person should decide: low_confidence (team = the best guess), out_of_scope, "
        "unsupported_language, no_model."
    )
    reason = serializers.ChoiceField(
        choices=REASONS,
        help_text="Why: routed; no_intent (a greeting, thanks: nothing to route); out_of_scope (a request no team "
        "handles); unsupported_language (a language the model was not trained on); low_confidence; no_model.",
    )
    language = serializers.CharField(allow_null=True, help_text="ISO 639-1 code when identified confidently.")
    scores = serializers.DictField(child=serializers.FloatField(), help_text="Per team slug.")
    model_version = serializers.CharField(allow_null=True)


class RouteBatchSerializer(serializers.Serializer):
    results = PredictionSerializer(many=True)
    model_version = serializers.CharField(allow_null=True)


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "active", "triage_threshold"]


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
