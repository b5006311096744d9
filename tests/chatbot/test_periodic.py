"""Periodic jobs: the scheduler enqueues each configured task on its interval; the worker runs it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot import periodic
from chatbot.models import Conversation

# The worker closes "old" connections between tasks, which a TestCase transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True)


def test_scheduler_has_one_interval_job_per_configured_task(settings):
    """Each PERIODIC_JOBS entry becomes an interval job; an interval of 0 turns a job off."""
    settings.SWITCHBOARD = {
        **settings.SWITCHBOARD,
        "PERIODIC_JOBS": {"chatbot.tasks.purge_empty_conversations": 30, "finetune.tasks.train_model": 0},
    }
    jobs = periodic.scheduler_build().get_jobs()
    assert [(job.id, job.trigger.interval) for job in jobs] == [
        ("chatbot.tasks.purge_empty_conversations", timedelta(seconds=30))
    ]


def test_an_unknown_task_path_fails_at_start(settings):
    """A typo in PERIODIC_JOBS stops the scheduler at once instead of failing silently later."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "PERIODIC_JOBS": {"chatbot.tasks.no_such_job": 10}}
    with pytest.raises(ImportError):
        periodic.scheduler_build()


def test_an_enqueued_purge_runs_in_the_worker_and_deletes_abandoned_conversations():
    """The scheduler's enqueue puts a job on the queue; a worker's run of it purges old empty rows."""
    from django_tasks_db.models import DBTaskResult

    old = Conversation.objects.create()
    Conversation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1))
    periodic.periodic_job_enqueue("chatbot.tasks.purge_empty_conversations")
    [queued] = DBTaskResult.objects.all()
    assert queued.task_path == "chatbot.tasks.purge_empty_conversations"
    from django.core.management import call_command

    call_command("db_worker", "--batch", "--queue-name", "default", "--no-startup-delay", "--no-reload", verbosity=0)
    assert not Conversation.objects.filter(pk=old.pk).exists()
