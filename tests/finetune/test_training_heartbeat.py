"""The heartbeat thread keeps a running run alive while the pipeline makes no progress calls."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from finetune.models import TrainingRun
from finetune.training import _heartbeat, training_runs_fail_stale


@pytest.mark.django_db(transaction=True)
def test_heartbeat_keeps_a_silent_run_from_being_marked_stale(settings):
    """A run silent for longer than the stale limit stays running while its heartbeat beats."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "RUN_STALE_SECONDS": 4}
    old = timezone.now() - timedelta(seconds=60)
    run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, heartbeat_at=old, started_at=old)
    with _heartbeat(run.pk):
        time.sleep(1.6)  # interval = 4 / 4 = 1 s: at least one beat
    run.refresh_from_db()
    assert run.heartbeat_at > old + timedelta(seconds=50)
    assert run not in training_runs_fail_stale()
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING
