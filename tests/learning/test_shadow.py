"""Shadow mode: a candidate scores live traffic beside the active model and is compared with it."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory
from django.utils import timezone

from chatbot.learning.shadow import ashadow_score, shadow_report, shadow_score
from chatbot.models import Conversation, Message, RoutingEvent
from finetune.models import Ticket
from finetune.services import ticket_record_correction
from routing.admin_models import put_in_shadow
from routing.loaded_model import LoadedModel
from routing.models import ModelVersion
from tests.learning.conftest import routed

SHADOW_URL = "/admin/routing/learning/shadow/"


@pytest.fixture
def chat_message(db) -> Message:
    conversation = Conversation.objects.create()
    return Message.objects.create(conversation=conversation, sender="customer", text="refund for my invoice")


def test_shadow_version_scores_live_text(teams, install_version, chat_message):
    """With a version in shadow, a scored message leaves one shadow RoutingEvent by that version."""
    shadow = install_version(state="shadow", shadow_since=timezone.now())
    shadow_score(conversation_id=chat_message.conversation_id, message_id=chat_message.pk, text=chat_message.text)
    [event] = RoutingEvent.objects.all()
    assert event.shadow and event.model_version == shadow and event.message == chat_message
    assert event.team.slug in {"accounts", "billing", "bugs"} and 0 < event.confidence <= 1


def test_without_a_shadow_version_nothing_is_written(teams, install_version, chat_message):
    """Only a version in state shadow is scored; candidates and the active one are not."""
    install_version(state="active")
    install_version(state="candidate")
    shadow_score(conversation_id=chat_message.conversation_id, message_id=chat_message.pk, text=chat_message.text)
    assert not RoutingEvent.objects.exists()


def test_broken_shadow_artifact_is_logged_not_raised(teams, install_version, model_store, chat_message, caplog):
    """A shadow version whose files fail verification never reaches the chat as an error."""
    shadow = install_version(state="shadow", shadow_since=timezone.now())
    (model_store / shadow.artifact_dir / "model.onnx").write_bytes(b"tampered")
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            shadow_score(
                conversation_id=chat_message.conversation_id, message_id=chat_message.pk, text=chat_message.text
            )
    assert not RoutingEvent.objects.exists()
    # Refused once, then remembered: one log line, not one per message.
    assert caplog.text.count(f"not scoring with model version {shadow.pk}") == 1


def test_any_failure_while_scoring_is_swallowed(teams, install_version, chat_message, monkeypatch, caplog):
    """Even an unexpected exception inside inference is logged and the caller carries on."""
    install_version(state="shadow", shadow_since=timezone.now())

    def explode(self, texts, **kwargs):
        raise RuntimeError("onnx fell over")

    monkeypatch.setattr(LoadedModel, "predict", explode)
    shadow_score(conversation_id=chat_message.conversation_id, message_id=None, text="hello")
    assert "scoring conversation" in caplog.text and "onnx fell over" in caplog.text
    assert not RoutingEvent.objects.exists()


def test_shadow_model_is_loaded_once_per_version(teams, install_version, chat_message, monkeypatch):
    """The open shadow model is reused; a different shadow version is loaded afresh."""
    loads = []
    original = LoadedModel.from_version.__func__
    monkeypatch.setattr(
        LoadedModel, "from_version", classmethod(lambda cls, v, **kw: loads.append(v.pk) or original(cls, v, **kw))
    )
    first = install_version(state="shadow", shadow_since=timezone.now())
    for _ in range(3):
        shadow_score(conversation_id=chat_message.conversation_id, message_id=None, text="invoice")
    first.state = "candidate"
    first.save()
    second = install_version(state="shadow", shadow_since=timezone.now())
    shadow_score(conversation_id=chat_message.conversation_id, message_id=None, text="invoice")
    assert loads == [first.pk, second.pk]
    assert RoutingEvent.objects.filter(model_version=second).count() == 1


@pytest.mark.django_db(transaction=True)
async def test_async_scoring_runs_off_the_event_loop(teams, install_version):
    """ashadow_score, awaited from a consumer, records the shadow decision."""
    shadow = await sync_to_async(install_version)(state="shadow", shadow_since=timezone.now())
    conversation = await Conversation.objects.acreate()
    await ashadow_score(conversation_id=conversation.pk, message_id=None, text="password reset")
    events = [e async for e in RoutingEvent.objects.filter(shadow=True, model_version=shadow)]
    assert len(events) == 1


def _scenario(teams) -> ModelVersion:
    """Four compared conversations, three with ground truth; see test_report_numbers."""
    accounts, billing, bugs = (next(t for t in teams if t.slug == s) for s in ("accounts", "billing", "bugs"))
    active = ModelVersion.objects.create(artifact_dir="a", sha256="a", state="active")
    shadow = ModelVersion.objects.create(
        artifact_dir="s", sha256="s", state="shadow", shadow_since=timezone.now() - timedelta(days=1)
    )
    pairs = [
        (billing, False, billing, False),
        (bugs, True, bugs, False),
        (accounts, False, billing, False),
        (billing, False, billing, False),
    ]
    conversations = []
    for active_team, active_triage, shadow_team, shadow_triage in pairs:
        event = routed(team=active_team, triage=active_triage, version=active)
        routed(team=shadow_team, triage=shadow_triage, version=shadow, shadow=True, conversation=event.conversation)
        conversations.append(event.conversation)
    ticket_record_correction(
        text="wrong team",
        team=accounts,
        corrected_from=billing,
        user=None,
        model_version=active,
        conversation_id=conversations[0].pk,
    )
    Conversation.objects.filter(pk=conversations[1].pk).update(team=bugs)
    ticket_record_correction(
        text="moved",
        team=billing,
        corrected_from=accounts,
        user=None,
        model_version=active,
        conversation_id=conversations[2].pk,
    )
    before = routed(team=bugs, triage=False, version=active)
    routed(
        team=bugs,
        triage=False,
        version=shadow,
        shadow=True,
        conversation=before.conversation,
        at=timezone.now() - timedelta(days=2),
    )
    routed(team=billing, triage=False, version=shadow, shadow=True)
    return shadow


def test_report_numbers(teams):
    """Agreement on decisions, accuracy on agent-corrected or triaged conversations, per team."""
    report = shadow_report(version=_scenario(teams))
    assert (report.scored, report.compared, report.agreed) == (5, 4, 2)
    assert (report.active_triaged, report.shadow_triaged) == (1, 0)
    assert (report.labelled, report.active_correct, report.shadow_correct) == (3, 1, 2)
    rows = {row.team: (row.count, row.active_correct, row.shadow_correct) for row in report.per_team}
    assert rows == {"Accounts": (1, 0, 0), "Bugs": (1, 1, 1), "Billing": (1, 0, 1)}
    assert report.agreement == 0.5 and report.shadow_accuracy == pytest.approx(2 / 3)


def test_report_without_traffic_has_no_rates(teams):
    """A fresh shadow version reports zeros and no rates rather than dividing by zero."""
    version = ModelVersion.objects.create(artifact_dir="s", sha256="s", state="shadow", shadow_since=timezone.now())
    report = shadow_report(version=version)
    assert (report.scored, report.compared, report.agreement, report.active_accuracy) == (0, 0, None, None)


def test_admin_page_shows_the_numbers(client, staff_user, teams):
    """The shadow report page shows agreement, both accuracies and the per-team table."""
    shadow = _scenario(teams)
    client.force_login(staff_user)
    response = client.get(SHADOW_URL)
    content = response.content.decode()
    assert response.context["version"] == shadow
    assert '<td id="shadow-scored">5</td>' in content
    assert '<td id="shadow-agreement">50%</td>' in content
    assert '<td id="active-accuracy">33% (1/3)</td>' in content
    assert '<td id="shadow-accuracy">67% (2/3)</td>' in content
    assert "Promote to active" in content and "Stop shadow" in content


def test_promote_button_makes_the_shadow_version_active(client, staff_user, teams, install_version):
    """One click promotes the shadow version; the old active one is retired."""
    old = install_version(state="active")
    shadow = install_version(state="shadow", shadow_since=timezone.now())
    client.force_login(staff_user)
    response = client.post(SHADOW_URL, {"version": shadow.pk, "action": "promote"}, follow=True)
    shadow.refresh_from_db()
    old.refresh_from_db()
    assert (shadow.state, old.state, shadow.promoted_by) == ("active", "retired", staff_user)
    assert f"V{shadow.pk} is now active" in response.content.decode()


def test_stop_shadow_returns_it_to_candidate(client, staff_user, teams, install_version):
    """Stop shadow ends the experiment; its report stays reachable."""
    shadow = install_version(state="shadow", shadow_since=timezone.now())
    client.force_login(staff_user)
    client.post(SHADOW_URL, {"version": shadow.pk, "action": "stop"})
    shadow.refresh_from_db()
    assert (shadow.state, shadow.shadow_since) == ("candidate", None)
    assert client.get(SHADOW_URL, {"version": shadow.pk}).status_code == 200


def test_page_without_shadow_explains_how_to_start(client, staff_user, teams):
    """With nothing in shadow the page says how to put a candidate there."""
    client.force_login(staff_user)
    assert "Put in shadow" in client.get(SHADOW_URL).content.decode()


def test_put_in_shadow_action(staff_user, teams, install_version):
    """The model-version admin action puts the selected candidate in shadow."""
    candidate = install_version(state="candidate")
    request = RequestFactory().post("/admin/routing/modelversion/")
    request.user = staff_user
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = admin.site._registry.get(ModelVersion) or admin.ModelAdmin(ModelVersion, admin.site)
    put_in_shadow(model_admin, request, ModelVersion.objects.filter(pk=candidate.pk))
    candidate.refresh_from_db()
    assert candidate.state == "shadow" and candidate.shadow_since is not None
    assert "is now in shadow" in str(list(get_messages(request))[0])


def test_put_in_shadow_refuses_the_active_version(staff_user, teams, install_version):
    """Shadowing the active version is refused with the service's message."""
    active = install_version(state="active")
    request = RequestFactory().post("/admin/routing/modelversion/")
    request.user, request.session = staff_user, {}
    request._messages = FallbackStorage(request)
    put_in_shadow(admin.ModelAdmin(ModelVersion, admin.site), request, ModelVersion.objects.filter(pk=active.pk))
    assert "is active; shadow a candidate instead" in str(list(get_messages(request))[0])
    assert Ticket.objects.count() == 0 and ModelVersion.objects.get(pk=active.pk).state == "active"
