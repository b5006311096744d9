from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Ticket(models.Model):
    """A support message, labelled with the team it belongs to, or as "not a request" (or not yet).

    "Not a request" (``no_intent``, team None) is the model's reserved no-intent label, not a
    team: it trains the no-intent class beside the shipped corpus and appears in no inbox,
    reassign list or per-team minimum.
    """

    class Source(models.TextChoices):
        IMPORT = "import", "Import"
        API = "api", "API"
        CHAT = "chat", "Chat"
        CORRECTION = "correction", "Agent correction"
        DEMO = "demo", "Demo"
        NOT_A_REQUEST = "not_a_request", "Agent: not a request"

    class Split(models.TextChoices):
        NONE = "", "Not yet split"
        TRAIN = "train", "Train"
        VAL = "val", "Validation"
        TEST = "test", "Test"

    text = models.TextField()
    # sha1 of the normalised text (casefolded, whitespace collapsed): duplicate detection.
    text_hash = models.CharField(max_length=40, db_index=True)
    team = models.ForeignKey("routing.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets")
    # Labelled "not a request": trains the no-intent label. Only with team None (a team wins).
    no_intent = models.BooleanField(default=False, verbose_name="not a request")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORT)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labelled_at = models.DateTimeField(null=True, blank=True)
    excluded = models.BooleanField(default=False, help_text="Junk: never used for training.")
    # The split a ticket was first given; kept forever so test sets stay frozen.
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.NONE, blank=True)
    # For corrections: the team the model (or an agent) had chosen, and under which model.
    corrected_from = models.ForeignKey(
        "routing.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        "routing.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=Q(external_id__isnull=False),
                name="ticket_external_id_unique_per_source",
            )
        ]
        indexes = [models.Index(fields=["team", "excluded"])]

    def __str__(self) -> str:
        return self.text[:80]


class TrainingRun(models.Model):
    """One execution of the pipeline: split, teach, distil, export, evaluate, register."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=64, blank=True)
    percent = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    model_version = models.ForeignKey(
        "routing.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_runs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED}
