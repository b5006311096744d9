"""Training runs through the admin, the REST API and ``manage.py train``."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from finetune.models import TrainingRun
from routing.models import ModelVersion
from tests.finetune.test_training_flow import run_worker
from tests.finetune.test_training_support import FAST_CONFIG, add_tickets, labelled, store, tiny_base  # noqa: F401

Status = TrainingRun.Status
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_defaults(monkeypatch):
    """The admin button sends no config: make the defaults the fast test config."""
    from finetune import training

    real = training.training_config_build

    def fast(*, overrides=None):
        return real(overrides={**FAST_CONFIG, **(overrides or {})})

    monkeypatch.setattr(training, "training_config_build", fast)


def test_admin_start_button_worker_and_live_progress(client, staff_user, labelled, store, fast_defaults):
    """Staff press Start: a run and a task are queued; the worker finishes it; the page and JSON show it."""
    client.force_login(staff_user)
    page = client.get(reverse("admin:finetune_trainingrun_changelist"))
    assert b"Start training run" in page.content
    response = client.post(reverse("admin:finetune_trainingrun_start"))
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:finetune_trainingrun_change", args=[run.pk])
    assert run.status == Status.QUEUED and DBTaskResult.objects.filter(id=run.task_id, queue_name="training").exists()
    detail = client.get(response.url)
    assert b"run-progress" in detail.content and b"Cancel run" in detail.content
    run_worker()
    progress = client.get(reverse("admin:finetune_trainingrun_progress", args=[run.pk])).json()
    assert progress["status"] == "succeeded" and progress["percent"] == 100 and progress["finished"]
    version = ModelVersion.objects.get()
    assert progress["model_version"] == version.pk and version.state == ModelVersion.State.ACTIVE
    listing = client.get(reverse("admin:finetune_trainingrun_changelist"))
    assert f"v{version.pk}</a>".encode() in listing.content


def test_admin_start_with_too_few_tickets_shows_message(client, staff_user, teams, store):
    """Not ready: the message names the short teams and nothing is queued."""
    add_tickets(teams[:1], per_team=5)
    client.force_login(staff_user)
    response = client.post(reverse("admin:finetune_trainingrun_start"), follow=True)
    assert "Accounts has 0" in response.content.decode()
    assert not TrainingRun.objects.exists() and not DBTaskResult.objects.exists()


def test_admin_start_while_running_redirects_to_that_run(client, staff_user, labelled):
    """A second start shows the conflict and goes to the run in progress."""
    busy = TrainingRun.objects.create(status=Status.RUNNING, stage="teacher", percent=40)
    TrainingRun.objects.filter(pk=busy.pk).update(heartbeat_at=busy.created_at)
    client.force_login(staff_user)
    response = client.post(reverse("admin:finetune_trainingrun_start"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:finetune_trainingrun_change", args=[busy.pk])
    assert f"Run #{busy.pk} is already running (teacher, 40%)" in response.content.decode()
    assert TrainingRun.objects.count() == 1


def test_admin_cancel_button_and_action(client, staff_user, labelled):
    """The cancel button cancels a queued run; the list action asks a running one to stop."""
    queued = TrainingRun.objects.create()
    client.force_login(staff_user)
    client.post(reverse("admin:finetune_trainingrun_cancel", args=[queued.pk]))
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    running = TrainingRun.objects.create(status=Status.RUNNING)
    client.post(
        reverse("admin:finetune_trainingrun_changelist"),
        {"action": "cancel_runs", "_selected_action": [running.pk]},
    )
    running.refresh_from_db()
    assert running.status == Status.RUNNING and running.cancel_requested


def test_admin_runs_are_read_only_and_staff_only(client, staff_user, plain_user):
    """No add or edit for runs; non-staff cannot start, watch or cancel."""
    run = TrainingRun.objects.create()
    client.force_login(staff_user)
    assert client.get(reverse("admin:finetune_trainingrun_add")).status_code == 403
    assert client.post(reverse("admin:finetune_trainingrun_change", args=[run.pk]), {"stage": "x"}).status_code == 403
    assert client.get(reverse("admin:finetune_trainingrun_start")).status_code == 405
    client.force_login(plain_user)
    for name in ("admin:finetune_trainingrun_start", "admin:finetune_trainingrun_cancel"):
        args = [run.pk] if name.endswith("cancel") else []
        assert client.post(reverse(name, args=args)).status_code == 302  # to the admin login
    assert client.get(reverse("admin:finetune_trainingrun_progress", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == Status.QUEUED and TrainingRun.objects.count() == 1


def test_rest_start_status_conflict_and_cancel(staff_user, labelled):
    """POST → 202 with the run; again → 409; GET shows it; cancel → 202 cancelled."""
    api = APIClient()
    api.force_authenticate(staff_user)
    response = api.post("/api/v1/training-runs", {"config": FAST_CONFIG}, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    assert response.json()["status"] == "queued" and TrainingRun.objects.get(pk=run_id).task_id
    again = api.post("/api/v1/training-runs", {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "run_in_progress"
    detail = api.get(f"/api/v1/training-runs/{run_id}").json()
    assert {"status", "stage", "percent", "eta_seconds", "metrics", "error", "model_version"} <= set(detail)
    assert [row["id"] for row in api.get("/api/v1/training-runs").json()] == [run_id]
    cancelled = api.post(f"/api/v1/training-runs/{run_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/api/v1/training-runs/{run_id}/cancel").status_code == 409


def test_rest_refuses_bad_input_and_non_staff(staff_user, agent_user, teams, store):
    """400 for too few tickets or an unknown config key; 403 for non-staff; nothing created."""
    add_tickets(teams, per_team=2)
    api = APIClient()
    api.force_authenticate(staff_user)
    short = api.post("/api/v1/training-runs", {}, format="json")
    assert short.status_code == 400 and short.json()["code"] == "not_enough_data"
    assert "Billing has 2" in short.json()["detail"]
    unknown = api.post("/api/v1/training-runs", {"config": {"epochz": 1}}, format="json")
    assert unknown.status_code == 400 and "epochz" in unknown.json()["detail"]
    api.force_authenticate(agent_user)
    assert api.post("/api/v1/training-runs", {}, format="json").status_code == 403
    assert api.get("/api/v1/training-runs").status_code == 403
    assert not TrainingRun.objects.exists()


def test_train_command_happy_path(labelled, store, capsys):
    """``manage.py train`` runs inline (no task), prints the comparison table and promotes."""
    call_command("train", "--config", json.dumps(FAST_CONFIG))
    out = capsys.readouterr().out
    run = TrainingRun.objects.get()
    assert run.status == Status.SUCCEEDED and run.started_by is None and run.task_id == ""
    assert not DBTaskResult.objects.exists()
    assert "TF-IDF + LR baseline" in out and "int8 ONNX (served)" in out and "PROMOTED" in out
    assert ModelVersion.objects.get().state == ModelVersion.State.ACTIVE


def test_train_command_fails_non_zero(labelled, store, monkeypatch, tmp_path):
    """A failing run makes the command exit non-zero with the run's error."""

    def explode(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("finetune.ml.pipeline.train_student", explode)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(FAST_CONFIG))
    with pytest.raises(CommandError, match="out of memory"):
        call_command("train", "--config-file", str(config_file))
    assert TrainingRun.objects.get().status == Status.FAILED and not ModelVersion.objects.exists()


def test_train_command_refuses_bad_config(labelled):
    """Invalid JSON or an unknown key is a CommandError before any run exists."""
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("train", "--config", "{epochs: 1}")
    with pytest.raises(CommandError, match="epochz"):
        call_command("train", "--config", '{"epochz": 1}')
    assert not TrainingRun.objects.exists()


def test_train_command_queue_and_wait_follows_the_worker(labelled, store, monkeypatch, capsys):
    """--queue --wait enqueues the run and follows the row until a worker has finished it."""
    from finetune.management.commands import train

    monkeypatch.setattr(train.time, "sleep", lambda seconds: run_worker())
    call_command("train", "--queue", "--wait", "--config", json.dumps(FAST_CONFIG))
    run = TrainingRun.objects.get()
    assert run.status == Status.SUCCEEDED and run.task_id and "PROMOTED" in capsys.readouterr().out


@pytest.mark.parametrize("body", ["null", "[]", '"go"', "7"])
def test_rest_refuses_a_body_that_is_not_an_object(staff_user, labelled, body):
    """A JSON body other than an object (null, a list, a string, a number) is 400 invalid; no run is queued."""
    api = APIClient()
    api.force_authenticate(staff_user)
    response = api.post("/api/v1/training-runs", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and set(response.json()) >= {"code", "detail"}
    assert not TrainingRun.objects.exists()
