from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Team(models.Model):
    """A product team: the place a message is routed to, and an agent inbox."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    # Per-team confidence below which a message goes to triage; None means the global value.
    triage_threshold = models.FloatField(null=True, blank=True)
    # Set by a merge (routing.teams.team_merge): the model's label for this team routes there.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One trained, exported, quantized student living in ``<store>/<number>/``."""

    class State(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        SHADOW = "shadow", "Shadow"
        RETIRED = "retired", "Retired"

    state = models.CharField(max_length=16, choices=State.choices, default=State.CANDIDATE)
    # Directory name under the model store (the version number as a string).
    artifact_dir = models.CharField(max_length=255, unique=True)
    # sha256 of the ``checksums`` file, which itself lists the sha256 of every artifact file.
    sha256 = models.CharField(max_length=64)
    labels = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    card = models.TextField(blank=True)
    # Accuracy of the int8 student on the frozen test split: the promotion gate compares it.
    test_accuracy = models.FloatField(null=True, blank=True)
    temperature = models.FloatField(default=1.0)
    # Threshold proposed from validation data for the target precision.
    proposed_triage_threshold = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shadow_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="one_active_model_version"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="shadow"), name="one_shadow_model_version"),
        ]

    def __str__(self) -> str:
        return f"v{self.pk} ({self.state})"
