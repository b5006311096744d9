"""Queue and cancel training runs: the web side. A worker executes them (finetune.tasks)."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from chatbot.core.errors import ConflictError, SwitchboardError
from finetune.models import TrainingRun
from finetune.selectors import training_readiness
from finetune.tasks import train_model
from finetune.training import training_config_build, training_runs_fail_stale
from finetune.training_selectors import training_run_in_progress

Status = TrainingRun.Status


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def training_run_start(*, user, config: dict | None = None, enqueue: bool = True) -> TrainingRun:
    """Queue a run (one at a time); with ``enqueue=False`` the caller executes it inline."""
    training_config_build(overrides=config)
    readiness = training_readiness()
    if not readiness.ok:
        raise SwitchboardError(readiness.message, code="not_enough_data")
    training_runs_fail_stale()
    with transaction.atomic():
        # Locking the newest run makes concurrent starts queue up here on PostgreSQL, so the
        # second one sees the first one's run (SQLite's IMMEDIATE transactions already do).
        list(TrainingRun.objects.select_for_update().order_by("-id").values_list("id", flat=True)[:1])
        busy = training_run_in_progress()
        if busy is not None:
            stage = busy.stage or "waiting for a worker"
            raise ConflictError(
                f"Run #{busy.pk} is already {busy.status} ({stage}, {busy.percent:.0f}%). Wait for it or cancel it.",
                code="run_in_progress",
            )
        run = TrainingRun.objects.create(config=config or {}, started_by=_user_or_none(user))
        if enqueue:
            transaction.on_commit(partial(_training_run_enqueue, run_id=run.pk))
    return run


def _training_run_enqueue(*, run_id: int) -> None:
    result = train_model.enqueue(run_id=run_id)
    TrainingRun.objects.filter(pk=run_id).update(task_id=str(result.id))


def training_run_cancel(*, run: TrainingRun, user) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop at its next step."""
    now = timezone.now()
    line = f"{now:%H:%M:%S} cancel requested by {_user_or_none(user) or 'the system'}\n"
    if TrainingRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, cancel_requested=True, finished_at=now, log=run.log + line
    ):
        run.refresh_from_db()
        return run
    if not TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(cancel_requested=True):
        run.refresh_from_db()
        raise ConflictError(f"Run #{run.pk} is {run.status}: only a queued or running run can be cancelled.")
    run.refresh_from_db()
    return run
