"""Training runs end to end: start, the real db_worker, registration, promotion gate, failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from chatbot.core.errors import ConflictError, SwitchboardError
from finetune.ml.artifact_format import NO_INTENT
from finetune.ml.artifacts import verify_checksums
from finetune.models import Ticket, TrainingRun
from finetune.training import training_run_execute
from finetune.training_queue import training_run_cancel, training_run_start
from routing.models import ModelVersion, Team
from tests.finetune.test_training_support import FAST_CONFIG, add_tickets, labelled, store, tiny_base  # noqa: F401
from tests.ml_fixtures import BARELY_TRAINED, NEAR_TIE_LABELS, NEAR_TIE_SEED

Status = TrainingRun.Status
# The worker closes "old" connections between tasks, which a TestCase transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True)


def run_worker() -> None:
    call_command("db_worker", "--batch", "--queue-name", "training", "--no-startup-delay", "--no-reload", verbosity=0)


def start_and_work(user, config=None) -> TrainingRun:
    run = training_run_start(user=user, config={**FAST_CONFIG, **(config or {})})
    run_worker()
    run.refresh_from_db()
    return run


def tmp_dirs(store):
    return sorted(p.name for p in store.glob(".tmp-run-*")) if store.exists() else []


def test_start_queues_one_task_and_worker_publishes_first_version(staff_user, labelled, store):
    """The worker runs the queued task; the first version is registered, verified and active."""
    run = training_run_start(user=staff_user, config=FAST_CONFIG)
    run.refresh_from_db()
    assert run.status == Status.QUEUED and run.started_by == staff_user
    task = DBTaskResult.objects.get(id=run.task_id)
    assert task.queue_name == "training" and task.args_kwargs["kwargs"] == {"run_id": run.pk}
    run_worker()
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    assert run.percent == 100 and run.started_at and run.finished_at and run.metrics["promoted"] is True
    version = run.model_version
    assert version.state == ModelVersion.State.ACTIVE and version.artifact_dir == str(version.pk)
    assert verify_checksums(store / version.artifact_dir) == version.sha256
    assert version.labels == ["accounts", "billing", "bugs", NO_INTENT] and "int8" in version.metrics
    assert version.metrics["parity"]["threshold"] == 0.97 <= version.metrics["parity"]["agreement"]
    assert tmp_dirs(store) == []
    assert not Ticket.objects.filter(team__isnull=False, split="").exists()


def test_worse_second_run_stays_candidate(staff_user, labelled, store):
    """A run below the active accuracy minus the margin is registered but not promoted."""
    first = start_and_work(staff_user)
    ModelVersion.objects.filter(pk=first.model_version_id).update(test_accuracy=1.01)
    second = start_and_work(staff_user)
    assert second.status == Status.SUCCEEDED
    assert second.model_version.state == ModelVersion.State.CANDIDATE
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).pk == first.model_version_id
    assert "stays a candidate" in second.log and second.metrics["promoted"] is False


def test_splits_are_frozen_across_runs(staff_user, labelled, store, teams):
    """Tickets keep the split of their first run; new tickets get one on the next run."""
    start_and_work(staff_user)
    before = dict(Ticket.objects.filter(team__isnull=False).values_list("id", "split"))
    add_tickets(teams, per_team=4, seed=7)
    start_and_work(staff_user)
    after = dict(Ticket.objects.filter(team__isnull=False).values_list("id", "split"))
    assert all(after[pk] == split for pk, split in before.items())
    assert len(after) > len(before) and "" not in after.values()


def test_too_few_tickets_names_each_team_and_queues_nothing(staff_user, teams, store):
    """Below MIN_TICKETS_PER_TEAM the error lists every short team with its count."""
    add_tickets(teams[:2], per_team=5)
    with pytest.raises(SwitchboardError) as caught:
        training_run_start(user=staff_user)
    assert "Bugs has 0" in caught.value.message and caught.value.code == "not_enough_data"
    assert not TrainingRun.objects.exists() and not DBTaskResult.objects.exists()


def test_unknown_config_key_is_a_400(staff_user, labelled):
    """An unknown option is refused, naming the key, before anything is created."""
    with pytest.raises(SwitchboardError) as caught:
        training_run_start(user=staff_user, config={"epochz": 3})
    assert "epochz" in caught.value.message and caught.value.http_status == 400
    assert not TrainingRun.objects.exists()


def test_second_start_conflicts(staff_user, labelled):
    """Only one run at a time: the second start says which run is in the way."""
    first = training_run_start(user=staff_user, config=FAST_CONFIG)
    with pytest.raises(ConflictError) as caught:
        training_run_start(user=staff_user)
    assert f"Run #{first.pk} is already queued" in caught.value.message
    assert "Wait for it or cancel it." in caught.value.message
    assert TrainingRun.objects.count() == 1 and DBTaskResult.objects.count() == 1


@pytest.mark.parametrize("stage", ["teacher", "export"])
def test_crash_mid_run_fails_cleanly(stage, staff_user, labelled, store, monkeypatch):
    """A stage that raises fails the run; no version, no temp dir, the active version untouched."""
    first = start_and_work(staff_user)
    target = {"teacher": "train_teacher", "export": "export_int8"}[stage]

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(f"finetune.ml.pipeline.{target}", explode)
    run = start_and_work(staff_user)
    assert run.status == Status.FAILED and "disk on fire" in run.error and run.model_version is None
    assert ModelVersion.objects.count() == 1
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).pk == first.model_version_id
    assert tmp_dirs(store) == [] and sorted(p.name for p in store.iterdir()) == [str(first.model_version_id)]


def test_parity_failure_fails_the_run(staff_user, store):
    """A barely trained model whose int8 copy flips near-ties fails the default gate; nothing is published."""
    teams = [Team.objects.create(slug=slug, name=slug.title()) for slug in NEAR_TIE_LABELS]
    add_tickets(teams, per_team=8, seed=NEAR_TIE_SEED)
    run = start_and_work(staff_user, {**BARELY_TRAINED, "seed": NEAR_TIE_SEED})
    assert run.status == Status.FAILED and "below the required 97.0%" in run.error and "not published" in run.error
    assert not ModelVersion.objects.exists() and tmp_dirs(store) == []


def test_stale_running_run_is_failed_at_next_start(staff_user, labelled, store, settings):
    """A worker killed mid-run leaves a running row and a temp dir; the next start cleans both."""
    old = timezone.now() - timedelta(seconds=600)
    dead = TrainingRun.objects.create(status=Status.RUNNING, started_at=old, heartbeat_at=old)
    (store / f".tmp-run-{dead.pk}-abcd1234").mkdir(parents=True)
    run = training_run_start(user=staff_user)
    dead.refresh_from_db()
    assert dead.status == Status.FAILED and "heartbeats" in dead.error and dead.finished_at
    assert run.status == Status.QUEUED and tmp_dirs(store) == []


def test_queued_run_whose_task_is_gone_is_stale(staff_user, labelled):
    """A queued run pointing at a deleted task would never run: it is failed, not waited for."""
    ghost = TrainingRun.objects.create(task_id="0b7f1d9e-6d0c-4a41-9a3c-0e5e0c2a1f00")
    training_run_start(user=staff_user)
    ghost.refresh_from_db()
    assert ghost.status == Status.FAILED and "task" in ghost.error


def test_cancel_queued_run_skips_execution(staff_user, labelled, store):
    """A queued run is cancelled at once and the worker then does nothing with it."""
    run = training_run_start(user=staff_user, config=FAST_CONFIG)
    run = training_run_cancel(run=run, user=staff_user)
    assert run.status == Status.CANCELLED and run.finished_at
    run_worker()
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and run.started_at is None and not ModelVersion.objects.exists()


def test_cancel_running_run_stops_at_next_step(staff_user, labelled, store, monkeypatch):
    """cancel_requested set while running makes the pipeline stop; the run ends cancelled."""
    monkeypatch.setattr("finetune.training.TRACKER_INTERVAL_SECONDS", 0)
    run = training_run_start(user=staff_user, config=FAST_CONFIG, enqueue=False)
    import finetune.ml.pipeline as pipeline

    real_teach = pipeline.teach

    def teach_then_cancel(*args, **kwargs):
        training_run_cancel(run=TrainingRun.objects.get(pk=run.pk), user=staff_user)
        return real_teach(*args, **kwargs)

    monkeypatch.setattr(pipeline, "teach", teach_then_cancel)
    run = training_run_execute(run_id=run.pk)
    assert run.status == Status.CANCELLED and run.cancel_requested
    assert not ModelVersion.objects.exists() and tmp_dirs(store) == []


def test_cancel_finished_run_conflicts(staff_user):
    """Cancelling a finished run says why it cannot be done."""
    run = TrainingRun.objects.create(status=Status.SUCCEEDED)
    with pytest.raises(ConflictError):
        training_run_cancel(run=run, user=staff_user)


def test_missing_base_model_is_refused_at_start(staff_user, labelled):
    """A base_model path that is not a directory is a 400 at start, not a crash in the worker."""
    with pytest.raises(SwitchboardError, match="does not exist"):
        training_run_start(user=staff_user, config={"base_model": "/nowhere/model"})
    assert not TrainingRun.objects.exists()


def test_cleanup_keeps_the_temp_dir_of_a_live_run(staff_user, labelled, store):
    """Only dead runs' temp dirs are removed: a running run's work in progress stays."""
    live = TrainingRun.objects.create(status=Status.RUNNING, heartbeat_at=timezone.now())
    finished = TrainingRun.objects.create(status=Status.FAILED)
    (store / f".tmp-run-{live.pk}-aaaa").mkdir(parents=True)
    (store / f".tmp-run-{finished.pk}-bbbb").mkdir()
    with pytest.raises(ConflictError):
        training_run_start(user=staff_user)
    assert tmp_dirs(store) == [f".tmp-run-{live.pk}-aaaa"]


def test_refused_promotion_leaves_a_succeeded_run_with_a_candidate(staff_user, labelled, store, monkeypatch):
    """If serving the new version is refused, the run still succeeds and says why it is a candidate."""
    from routing.loaded_model import ArtifactError

    def refuse(**kwargs):
        raise ArtifactError("model.onnx differs from its recorded sha256.")

    monkeypatch.setattr("routing.services.model_version_promote", refuse)
    run = start_and_work(staff_user)
    assert run.status == Status.SUCCEEDED and run.model_version.state == ModelVersion.State.CANDIDATE
    assert "could not be promoted: model.onnx differs" in run.metrics["promotion_reason"]
