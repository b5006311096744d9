"""Fixtures shared by the training tests (imported by name), and tests of the run tracker itself."""

from __future__ import annotations

import pytest

from chatbot.core.text import text_hash
from finetune.models import Ticket, TrainingRun
from finetune.training import RunTracker
from tests.ml_fixtures import make_tiny_base_model, synthetic_tickets

# Small, fast and deterministic; the parity gate stays at its default (this model passes it).
FAST_CONFIG = {
    "epochs": 2,
    "distil_epochs": 2,
    "lr": 3e-3,
    "distil_lr": 3e-3,
    "batch_size": 16,
    "patience": 0,
    "threads": 1,
    "seed": 0,
    "min_distil_steps": 0,
}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    return make_tiny_base_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture
def store(settings, tiny_base, tmp_path):
    """The model store: a tmp dir; the base model: the tiny BERT; 4 tickets per team suffice."""
    settings.SWITCHBOARD = {
        **settings.SWITCHBOARD,
        "BASE_MODEL": str(tiny_base),
        "MODEL_STORE": str(tmp_path / "store"),
        "MIN_TICKETS_PER_TEAM": 4,
    }
    return tmp_path / "store"


def add_tickets(teams, per_team: int = 12, seed: int = 0) -> list[Ticket]:
    by_slug = {team.slug: team for team in teams}
    rows = synthetic_tickets(sorted(by_slug), per_label=per_team, seed=seed)
    tickets = [Ticket(text=text, text_hash=text_hash(text), team=by_slug[label]) for text, label in rows]
    unlabelled = [
        Ticket(text=text, text_hash=text_hash(text)) for text, _ in synthetic_tickets(sorted(by_slug), 3, seed + 1)
    ]
    return Ticket.objects.bulk_create(tickets + unlabelled)


@pytest.fixture
def labelled(teams, store) -> list[Ticket]:
    """12 labelled tickets per team plus a few unlabelled ones."""
    return add_tickets(teams)


@pytest.mark.django_db
def test_tracker_writes_at_most_once_per_interval(django_assert_num_queries):
    """Many progress calls within the interval cost one UPDATE, not one each."""
    run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING)
    tracker = RunTracker(run, interval=60)
    with django_assert_num_queries(1):
        for step in range(50):
            tracker.progress("teacher", step, f"step {step}")
    run.refresh_from_db()
    assert run.stage == "teacher" and run.percent == 0 and run.heartbeat_at is not None


@pytest.mark.django_db
def test_tracker_eta_and_cancel_poll():
    """ETA follows elapsed/percent; should_cancel sees cancel_requested set by another process."""
    run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING)
    printed = []
    tracker = RunTracker(run, lambda *args: printed.append(args), interval=0)
    tracker.started -= 10
    tracker.progress("teacher", 50, "half")
    assert 9 < tracker.eta < 12 and printed[-1][:2] == ("teacher", 50)
    assert tracker.should_cancel() is False
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    assert tracker.should_cancel() is True
    run.refresh_from_db()
    assert run.percent == 50 and "teacher 50% half" in run.log
