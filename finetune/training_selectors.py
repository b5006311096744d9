"""Reads over training runs: the one in progress, the dead ones, and what a progress bar shows."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from chatbot.core.conf import setting
from finetune.models import TrainingRun

IN_PROGRESS = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)


def training_run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("started_by", "model_version").order_by("-id")


def training_run_in_progress() -> TrainingRun | None:
    """The queued or running run, if any (there is at most one unless a start raced)."""
    return TrainingRun.objects.filter(status__in=IN_PROGRESS).order_by("id").first()


def _task_finished_or_missing(task_id: str) -> bool:
    task = DBTaskResult.objects.filter(id=task_id).values_list("status", flat=True).first()
    return task is None or task in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


def training_runs_stale() -> list[tuple[TrainingRun, str]]:
    """Runs that claim to be in progress but whose worker is gone, each with the reason.

    Running: no heartbeat for RUN_STALE_SECONDS, or its task already ended. Queued: its task
    is gone or ended, or it was never enqueued (the enqueue after commit never happened).
    A queued run whose task simply waits for a worker is not stale: it will still run.
    """
    limit = setting("RUN_STALE_SECONDS")
    cutoff = timezone.now() - timedelta(seconds=limit)
    stale = []
    for run in TrainingRun.objects.filter(status__in=IN_PROGRESS).order_by("id"):
        last_sign = run.heartbeat_at or run.started_at or run.created_at
        task_over = bool(run.task_id) and _task_finished_or_missing(run.task_id)
        if run.status == TrainingRun.Status.RUNNING and last_sign < cutoff:
            stale.append((run, f"its worker stopped sending heartbeats for over {limit} s"))
        elif task_over:
            stale.append((run, "its queued task is gone or ended without finishing the run"))
        elif run.status == TrainingRun.Status.QUEUED and not run.task_id and run.created_at < cutoff:
            stale.append((run, "it was never handed to the task queue"))
    return stale


def training_run_ids_alive() -> set[int]:
    return set(TrainingRun.objects.filter(status__in=IN_PROGRESS).values_list("id", flat=True))


def training_run_progress(*, run: TrainingRun) -> dict:
    """What the admin's live progress bar and the API's status show."""
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "stage": run.stage,
        "percent": round(run.percent, 1),
        "eta_seconds": None if run.eta_seconds is None else round(run.eta_seconds),
        "cancel_requested": run.cancel_requested,
        "finished": run.is_finished,
        "error": run.error,
        "log_tail": "\n".join(run.log.splitlines()[-15:]),
        "model_version": run.model_version_id,
    }
