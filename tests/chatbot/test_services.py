"""Chat write services: idempotent posts, updated_at bumps, and broadcasts collected for the caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from chatbot import services, services_bulk
from chatbot.errors import SwitchboardError
from chatbot.models import Conversation, Message, RoutingEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _aged(conversation: Conversation, seconds: float) -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))
    return Conversation.objects.get(pk=conversation.pk)


def test_resend_returns_the_stored_message_and_stores_nothing_new():
    """A second post with the same client_id returns the first message, created False, one row."""
    conversation = services.conversation_start()
    first = services.message_post_customer(conversation=conversation, text="hello", client_id="c-1")
    again = services.message_post_customer(conversation=conversation, text="hello again", client_id="c-1")
    assert first.created and not again.created
    assert again.message.pk == first.message.pk and again.message.text == "hello"
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_same_client_id_in_two_conversations_is_two_messages():
    """client_id is unique per conversation only: another conversation may reuse it."""
    one, two = services.conversation_start(), services.conversation_start()
    a = services.message_post_customer(conversation=one, text="a", client_id="same")
    b = services.message_post_customer(conversation=two, text="b", client_id="same")
    assert a.created and b.created and a.message.pk != b.message.pk


def test_resend_inside_an_outer_transaction_keeps_it_usable():
    """Called inside a caller's transaction, a duplicate rolls back only its own savepoint."""
    conversation = services.conversation_start()
    services.message_post_customer(conversation=conversation, text="x", client_id="dup")
    with transaction.atomic():
        again = services.message_post_customer(conversation=conversation, text="x", client_id="dup")
        later = services.message_post_customer(conversation=conversation, text="y", client_id="new")
    assert not again.created and later.created
    assert list(Message.objects.filter(conversation=conversation).values_list("client_id", flat=True)) == ["dup", "new"]


def test_closed_conversation_refuses_even_a_resend():
    """After close, a post (new or resent client_id) raises conversation_closed and stores nothing."""
    conversation = services.conversation_start()
    services.message_post_customer(conversation=conversation, text="x", client_id="one")
    services.conversation_close(conversation=conversation, user=None)
    for client_id in ("one", "two"):
        with pytest.raises(SwitchboardError) as raised:
            services.message_post_customer(conversation=conversation, text="x", client_id=client_id)
        assert raised.value.code == "conversation_closed"
    assert Message.objects.filter(conversation=conversation, sender="customer").count() == 1


def test_updated_at_moves_only_when_older_than_the_resolution():
    """A message bumps a stale updated_at to now; a fresh one (under the resolution) is left alone."""
    stale = _aged(services.conversation_start(), services.UPDATED_AT_RESOLUTION_SECONDS + 60)
    services.message_post_customer(conversation=stale, text="x", client_id="a")
    bumped = Conversation.objects.get(pk=stale.pk).updated_at
    assert timezone.now() - bumped < timedelta(seconds=30)
    fresh = _aged(stale, 1)
    services.message_post_customer(conversation=fresh, text="y", client_id="b")
    assert Conversation.objects.get(pk=stale.pk).updated_at == fresh.updated_at


def test_first_agent_reply_assigns_the_agent_even_when_fresh(agent_user):
    """The first agent reply sets assigned_agent regardless of the updated_at resolution."""
    conversation = services.conversation_start()
    services.message_post_agent(conversation=conversation, user=agent_user, text="hi", client_id="r")
    assert Conversation.objects.get(pk=conversation.pk).assigned_agent_id == agent_user.pk


def test_broadcasts_collected_holds_committed_events_for_the_caller(monkeypatch):
    """Inside broadcasts_collected a committed post's events land in the outbox, none are sent."""
    sent = []
    monkeypatch.setattr(services, "async_to_sync", lambda send: lambda group, event: sent.append(group))
    conversation = services.conversation_start()
    with services.broadcasts_collected() as outbox:
        services.message_post_customer(conversation=conversation, text="x", client_id="a")
    assert sent == []
    assert [group for group, _ in outbox.events] == [services.conversation_group(conversation.pk)]
    assert outbox.events[0][1]["message"]["client_id"] == "a"


def test_broadcast_committing_after_the_block_is_sent_not_dropped(monkeypatch):
    """An event whose transaction commits after broadcasts_collected has closed is sent at once."""
    sent = []
    monkeypatch.setattr(services, "async_to_sync", lambda send: lambda group, event: sent.append(group))
    conversation = services.conversation_start()
    with transaction.atomic():
        with services.broadcasts_collected() as outbox:
            services.message_post_customer(conversation=conversation, text="x", client_id="a")
    assert outbox.events == []
    assert sent == [services.conversation_group(conversation.pk)]


def test_collected_events_of_a_rolled_back_post_never_appear():
    """A post that fails (closed conversation) leaves nothing in the outbox."""
    conversation = services.conversation_start()
    services.conversation_close(conversation=conversation, user=None)
    with services.broadcasts_collected() as outbox:
        with pytest.raises(SwitchboardError):
            services.message_post_customer(conversation=conversation, text="x", client_id="a")
    assert outbox.events == []


async def test_broadcasts_in_flight_never_exceed_the_layer_concurrency(monkeypatch):
    """Hundreds of sockets broadcasting at once keep at most LAYER_CONCURRENCY layer calls in flight."""
    in_flight, peak = 0, 0

    class SlowLayer:
        async def group_send(self, group, event):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1

    monkeypatch.setattr(services, "get_channel_layer", SlowLayer)
    await asyncio.gather(*(services.broadcasts_send([("g", {"n": n}), ("h", {"n": n})]) for n in range(300)))
    assert peak == services.LAYER_CONCURRENCY


def _request(conversation: Conversation, text: object, client_id: object) -> services_bulk.PostRequest:
    return services_bulk.PostRequest(conversation_id=conversation.pk, text=text, client_id=client_id)


def test_batch_stores_each_message_once_and_answers_in_request_order():
    """One batch over several conversations: one outcome per request, in order, each row stored once."""
    one, two = services.conversation_start(), services.conversation_start()
    outcomes = services_bulk.messages_post_customer(
        requests=[_request(one, "a", "1"), _request(two, "b", "1"), _request(one, "c", "2")]
    )
    results = [result for result, _ in outcomes]
    assert [r.message.text for r in results] == ["a", "b", "c"] and all(r.created for r in results)
    assert list(Message.objects.filter(conversation=one).values_list("text", flat=True)) == ["a", "c"]
    assert results[0].message.pk < results[2].message.pk


def test_batch_refuses_bad_and_closed_messages_one_by_one_and_stores_the_rest():
    """Invalid text and a closed conversation get their own errors; the others in the batch are stored."""
    open_one, closed = services.conversation_start(), services.conversation_start()
    services.conversation_close(conversation=closed, user=None)
    outcomes = services_bulk.messages_post_customer(
        requests=[_request(open_one, "  ", "x"), _request(closed, "hi", "y"), _request(open_one, "ok", "z")]
    )
    assert [getattr(result, "code", None) for result, _ in outcomes] == ["empty_text", "conversation_closed", None]
    assert [events for _, events in outcomes][:2] == [[], []]
    assert list(Message.objects.filter(sender="customer").values_list("client_id", flat=True)) == ["z"]


def test_batch_with_resends_returns_the_stored_messages_and_stores_the_new_one():
    """A client_id stored before, or twice in one batch, is stored once; the new message beside it is stored."""
    conversation = services.conversation_start()
    first = services.message_post_customer(conversation=conversation, text="first", client_id="one")
    outcomes = services_bulk.messages_post_customer(
        requests=[_request(conversation, "first", "one"), _request(conversation, "new", "two"),
                  _request(conversation, "new", "two")]
    )
    (again, again_events), (new, new_events), (twice, _) = outcomes
    assert not again.created and again.message.pk == first.message.pk and again_events == []
    assert new.created and not twice.created and twice.message.pk == new.message.pk
    assert [group for group, _ in new_events] == [services.conversation_group(conversation.pk)]
    assert list(Message.objects.filter(conversation=conversation).values_list("client_id", flat=True)) == ["one", "two"]


def test_batch_broadcasts_go_to_the_inbox_of_a_routed_conversation(teams):
    """A routed conversation's message is announced to its conversation group and its team inbox."""
    conversation = services.conversation_start()
    Conversation.objects.filter(pk=conversation.pk).update(team=teams[0], routed_at=timezone.now())
    [(result, events)] = services_bulk.messages_post_customer(requests=[_request(conversation, "more", "m")])
    assert result.routed
    assert [group for group, _ in events] == [services.conversation_group(conversation.pk), "team.billing"]
    assert events[1][1]["message"]["text"] == "more"


def _prediction(team: str, *, triage: bool = False):
    from routing.loaded_model import Prediction

    reason = "low_confidence" if triage else "routed"
    return Prediction(
        team=team, team_name=team.title(), confidence=0.9, triage=triage, reason=reason, language=None, scores={},
        model_version="none",
    )


def test_route_batch_routes_each_conversation_once_and_announces_it_with_its_history(teams):
    """One batch: a confident one to its team, an unsure one to triage, a repeat left alone; events carry history."""
    sure, unsure = services.conversation_start(), services.conversation_start()
    first = services.message_post_customer(conversation=sure, text="invoice wrong", client_id="a").message
    services.message_post_customer(conversation=unsure, text="hmm", client_id="b")
    requests = [
        services_bulk.RouteRequest(conversation_id=sure.pk, prediction=_prediction("billing"), message=first),
        services_bulk.RouteRequest(conversation_id=unsure.pk, prediction=_prediction("bugs", triage=True)),
        services_bulk.RouteRequest(conversation_id=sure.pk, prediction=_prediction("bugs")),
    ]
    with services.broadcasts_collected() as outbox:
        routed = services_bulk.conversations_route(requests=requests)
    assert [(c.team.slug if c.team else None, c.predicted_team.slug) for c in routed] == [
        ("billing", "billing"), (None, "bugs"), ("billing", "billing")
    ]
    assert RoutingEvent.objects.filter(conversation=sure).count() == 1
    assigned = {group: event for group, event in outbox.events if event["type"] == "conversation.assigned"}
    assert set(assigned) == {"team.billing", services.TRIAGE_GROUP}
    assert assigned["team.billing"]["conversation"]["preview"] == "invoice wrong"
    assert [m["text"] for m in assigned["team.billing"]["messages"]] == ["invoice wrong"]
    again = services_bulk.conversations_route(
        requests=[services_bulk.RouteRequest(conversation_id=unsure.pk, prediction=_prediction("billing"))]
    )
    assert again[0].team is None and RoutingEvent.objects.filter(conversation=unsure).count() == 1


@pytest.mark.parametrize("one_statement", [True, False], ids=["update-from-values", "older-sqlite"])
def test_route_batch_writes_each_rows_own_values(teams, one_statement, monkeypatch):
    """Rows bound for different teams, triage and no model at all: the database holds each one's
    own team, prediction, confidence and version; a conversation outside the batch is untouched.
    One UPDATE where the database has UPDATE ... FROM (VALUES), one per group where it has not;
    a batch of only no-model rows (every value NULL) works on both."""
    monkeypatch.setattr(services_bulk, "_update_from_values", lambda: one_statement)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from routing.loaded_model import Prediction
    from routing.models import ModelVersion

    version = ModelVersion.objects.create(artifact_dir="v-batch", sha256="0" * 64)
    billing, accounts, unsure, no_model, outside = (services.conversation_start() for _ in range(5))

    def predicted(team: str, confidence: float, *, triage: bool = False) -> Prediction:
        return Prediction(team=team, team_name=team, confidence=confidence, triage=triage,
                          reason="low_confidence" if triage else "routed", language=None, scores={},
                          model_version=str(version.pk))

    requests = [
        services_bulk.RouteRequest(conversation_id=billing.pk, prediction=predicted("billing", 0.91)),
        services_bulk.RouteRequest(conversation_id=accounts.pk, prediction=predicted("accounts", 0.77)),
        services_bulk.RouteRequest(conversation_id=unsure.pk, prediction=predicted("bugs", 0.31, triage=True)),
        services_bulk.RouteRequest(conversation_id=no_model.pk, prediction=None),
    ]
    with services.broadcasts_collected(), CaptureQueriesContext(connection) as queries:
        services_bulk.conversations_route(requests=requests)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "chatbot_conversation"')]
    assert len(updates) == (1 if one_statement else 4)  # else one per (team, prediction, version)
    rows = {c.pk: c for c in Conversation.objects.select_related("team", "predicted_team")}
    got = [
        (c.team and c.team.slug, c.predicted_team and c.predicted_team.slug, c.confidence, c.model_version_id)
        for c in (rows[billing.pk], rows[accounts.pk], rows[unsure.pk], rows[no_model.pk])
    ]
    assert got == [
        ("billing", "billing", 0.91, version.pk),
        ("accounts", "accounts", 0.77, version.pk),
        (None, "bugs", 0.31, version.pk),
        (None, None, None, None),
    ]
    assert all(rows[c.pk].routed_at is not None for c in (billing, accounts, unsure, no_model))
    assert rows[billing.pk].routed_at == rows[no_model.pk].routed_at == rows[no_model.pk].updated_at
    assert rows[outside.pk].routed_at is None and rows[outside.pk].predicted_team_id is None
    with services.broadcasts_collected():
        services_bulk.conversations_route(
            requests=[services_bulk.RouteRequest(conversation_id=outside.pk, prediction=None)]
        )
    outside = Conversation.objects.get(pk=outside.pk)
    assert outside.routed_at is not None and outside.confidence is None and outside.team_id is None


def test_a_lock_that_waited_for_a_routing_sees_the_routed_team(teams):
    """A message batch that locks a conversation while its routing commits gets the team with it.

    On PostgreSQL the routing runs on another connection and commits while the lock waits (the
    race that once gave team_id set and team None, failing the whole batch); SQLite has no row
    locks, so there the routing simply commits first.
    """
    import threading
    import time

    from django.db import connection

    conversation = services.conversation_start()
    team = teams[0]
    locked_by_routing = threading.Event()

    def route(hold: float) -> None:
        with transaction.atomic():
            row = Conversation.objects.select_for_update().get(pk=conversation.pk)
            row.team = team
            row.save(update_fields=["team"])
            locked_by_routing.set()
            time.sleep(hold)  # the batch below is waiting on the row meanwhile

    if connection.vendor == "postgresql":
        routing = threading.Thread(target=lambda: (route(0.5), connection.close()))
        routing.start()
        assert locked_by_routing.wait(5)
        begun = time.monotonic()
        with transaction.atomic():
            locked = services.conversations_lock([conversation.pk])
        waited = time.monotonic() - begun
        routing.join()
        assert waited > 0.3  # it really waited for the routing's commit
    else:
        route(0.0)
        with transaction.atomic():
            locked = services.conversations_lock([conversation.pk])
    assert [(row.pk, row.team_id, row.team) for row in locked] == [(conversation.pk, team.pk, team)]
    outcomes = services_bulk.messages_post_customer(
        requests=[services_bulk.PostRequest(conversation_id=conversation.pk, text="still there?", client_id="c-9")]
    )
    assert outcomes[0][0].created
