"""Drift watch: daily triage share and corrections, the warning threshold, the dashboard, drift_check."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from chatbot.learning.drift import drift_check, drift_daily, drift_warnings, labels_since_last_model
from finetune.models import Ticket, TrainingRun
from routing.models import ModelVersion
from tests.learning.conftest import routed

DRIFT_URL = "/admin/routing/learning/drift/"


def _at(day: date, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour))


def _corrections(team, count: int, *, days_ago: float) -> None:
    when = timezone.now() - timedelta(days=days_ago)
    for n in range(count):
        ticket = Ticket.objects.create(
            text=f"{team.slug} correction {days_ago} {n}",
            text_hash=f"{team.slug}-{days_ago}-{n}",
            source=Ticket.Source.CORRECTION,
            team=team,
            labelled_at=when,
        )
        Ticket.objects.filter(pk=ticket.pk).update(created_at=when)


@pytest.fixture
def by_slug(teams) -> dict:
    return {team.slug: team for team in teams}


@pytest.fixture
def drifting(by_slug) -> dict:
    """Billing: 12 corrections this week vs 5 last week; accounts 10 vs 6; bugs 9 vs 0."""
    for slug, this_week, last_week in (("billing", 12, 5), ("accounts", 10, 6), ("bugs", 9, 0)):
        _corrections(by_slug[slug], this_week, days_ago=2)
        _corrections(by_slug[slug], last_week, days_ago=9)
    return by_slug


def test_daily_triage_share_and_corrections(by_slug):
    """Each day counts live routing (not shadow) and corrections, in total and per team."""
    today = date(2030, 1, 15)
    yesterday = today - timedelta(days=1)
    billing, accounts = by_slug["billing"], by_slug["accounts"]
    for triage in (False, False, True):
        routed(team=billing, triage=triage, version=None, at=_at(yesterday))
    routed(team=accounts, triage=True, version=None, at=_at(yesterday))
    routed(team=billing, triage=True, version=None, shadow=True, at=_at(yesterday))
    routed(team=billing, triage=False, version=None, at=_at(today))
    routed(team=billing, triage=True, version=None, at=_at(today - timedelta(days=20)))
    ticket = Ticket.objects.create(text="x", text_hash="x", source=Ticket.Source.CORRECTION, team=billing)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=_at(yesterday))

    days = drift_daily(days=14, today=today)

    assert [d.day for d in days][-2:] == [yesterday, today] and len(days) == 14
    day = days[-2]
    assert (day.routed, day.triaged, day.triage_share, day.corrections) == (4, 2, 0.5, 1)
    team_rows = {t.slug: (t.routed, t.triaged, t.corrections) for t in day.teams}
    assert team_rows == {"accounts": (1, 1, 0), "billing": (3, 1, 1), "bugs": (0, 0, 0)}
    assert days[-1].triage_share == 0 and days[0].triage_share is None
    assert next(t for t in day.teams if t.slug == "billing").correction_rate == pytest.approx(1 / 3)


def test_warning_fires_when_corrections_double(drifting):
    """Only a team at >= DRIFT_FACTOR x last week and >= DRIFT_MIN_CORRECTIONS is flagged."""
    ModelVersion.objects.create(artifact_dir="old", sha256="x", state="active")
    ModelVersion.objects.filter(artifact_dir="old").update(created_at=timezone.now() - timedelta(days=5))
    [warning] = drift_warnings()
    assert (warning.team, warning.this_week, warning.last_week) == ("billing", 12, 5)
    assert warning.new_labels == 31 == labels_since_last_model()
    assert warning.message == (
        "Corrections for Billing doubled this week (12 vs 5 the week before) — "
        "31 new labels since the last model; train now?"
    )


def test_threshold_is_configurable(drifting, settings):
    """DRIFT_FACTOR and DRIFT_MIN_CORRECTIONS come from the SWITCHBOARD settings."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "DRIFT_FACTOR": 1.5, "DRIFT_MIN_CORRECTIONS": 3}
    messages = {w.team: w.message for w in drift_warnings()}
    assert set(messages) == {"accounts", "billing", "bugs"}
    assert "Corrections for Bugs went from 0 to 9 this week" in messages["bugs"]
    assert "Corrections for Accounts rose 1.7x this week (10 vs 6" in messages["accounts"]
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "DRIFT_FACTOR": 3.0, "DRIFT_MIN_CORRECTIONS": 3}
    assert [w.team for w in drift_warnings()] == ["bugs"]


def test_dashboard_shows_chart_table_and_warning(client, staff_user, drifting):
    """The dashboard draws an inline SVG chart, a per-day table and the warning with Train now."""
    client.force_login(staff_user)
    response = client.get(DRIFT_URL)
    content = response.content.decode()
    assert response.status_code == 200 and len(response.context["days"]) == 14
    assert '<svg class="drift-chart"' in content and content.count('<rect class="bar"') == 14
    assert "Corrections for Billing doubled this week" in content and 'id="train-now"' in content
    assert len(client.get(DRIFT_URL, {"days": "30"}).context["days"]) == 30


def test_train_now_starts_a_training_run(client, staff_user, drifting):
    """The button queues a run through training_run_start, started by the clicking user."""
    client.force_login(staff_user)
    response = client.post(DRIFT_URL, follow=True)
    run = TrainingRun.objects.get()
    assert run.started_by == staff_user and run.status == "queued"
    assert f"Training run #{run.pk} queued" in response.content.decode()


def test_train_now_explains_a_refusal(client, staff_user, by_slug):
    """Without enough labelled tickets the button says why nothing started."""
    client.force_login(staff_user)
    response = client.post(DRIFT_URL, follow=True)
    assert not TrainingRun.objects.exists() and "Not ready" in response.content.decode()


def test_admin_index_shows_warnings_and_links(client, staff_user, drifting):
    """The admin home shows the drift warning on top, with links to the learning pages."""
    client.force_login(staff_user)
    content = client.get("/admin/").content.decode()
    assert "Corrections for Billing doubled this week" in content
    for url in ("/admin/finetune/label-next/", DRIFT_URL, "/admin/routing/learning/shadow/"):
        assert f'href="{url}"' in content
    assert 'id="learning-loop"' in content and "Label, train, promote" in content


def _drift_check_output(*args) -> str:
    out = StringIO()
    call_command("drift_check", *args, stdout=out)
    return out.getvalue()


def test_drift_check_without_drift(by_slug):
    """A quiet week prints that there is no drift and starts nothing."""
    _corrections(by_slug["billing"], 3, days_ago=1)
    assert "No drift" in _drift_check_output("--auto-train")
    assert not TrainingRun.objects.exists()


def test_drift_check_prints_warnings_without_auto_train(drifting):
    """DRIFT_AUTO_TRAIN off (the default): warnings only."""
    output = _drift_check_output()
    assert "Corrections for Billing doubled this week" in output
    assert not TrainingRun.objects.exists()


def test_drift_check_auto_trains(drifting, settings):
    """With DRIFT_AUTO_TRAIN on, a warning starts a training run."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "DRIFT_AUTO_TRAIN": True}
    output = _drift_check_output()
    run = TrainingRun.objects.get()
    assert f"Started training run #{run.pk}." in output and run.started_by is None
    assert "Did not start" in _drift_check_output()
    assert TrainingRun.objects.count() == 1


def test_drift_check_reports_a_run_in_progress(drifting, settings):
    """A run already running is reported, not raised; --no-auto-train overrides the setting."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "DRIFT_AUTO_TRAIN": True}
    busy = TrainingRun.objects.create(status="running", stage="teach", heartbeat_at=timezone.now())
    output = _drift_check_output()
    assert f"Did not start a training run: Run #{busy.pk} is already running" in output
    assert "Did not start" not in _drift_check_output("--no-auto-train")


def test_auto_train_needs_enough_data(by_slug):
    """Not enough labelled tickets per team comes back as the reason, not an exception."""
    _corrections(by_slug["billing"], 10, days_ago=1)
    result = drift_check(auto_train=True)
    assert result.run is None and result.problem.startswith("Not ready")


def test_auto_train_skips_when_nothing_new_was_labelled(drifting):
    """If the newest model already saw every label, retraining is pointless and is skipped."""
    ModelVersion.objects.create(artifact_dir="fresh", sha256="x", state="active")
    result = drift_check(auto_train=True)
    assert result.run is None and "No new labels" in result.problem
