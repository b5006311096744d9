"""Background tasks (django-tasks, database backend): run with ``manage.py db_worker --queue-name training``."""

from __future__ import annotations

from django_tasks import task

from finetune.training import training_run_execute


@task(queue_name="training")
def train_model(run_id: int) -> str:
    """Execute one queued training run; the run row, not this return value, holds the outcome."""
    return training_run_execute(run_id=run_id).status
