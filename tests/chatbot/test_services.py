"""Chat write services: idempotent posts, updated_at bumps, and broadcasts collected for the caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from chatbot import broadcast, services
from chatbot.core.errors import SwitchboardError
from chatbot.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


def _post(conversation: Conversation, text: object, client_id: object, *, author=None) -> services.PostResult:
    """One message through the write path production uses (a batch of one); a refusal is raised."""
    sender = Message.Sender.AGENT if author is not None else Message.Sender.CUSTOMER
    request = services.PostRequest(
        conversation_id=conversation.pk, text=text, client_id=client_id, sender=sender, author=author
    )
    [(result, _)] = services.messages_post(requests=[request])
    if isinstance(result, SwitchboardError):
        raise result
    return result


def _aged(conversation: Conversation, seconds: float) -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))
    return Conversation.objects.get(pk=conversation.pk)


def test_resend_returns_the_stored_message_and_stores_nothing_new():
    """A second post with the same client_id returns the first message, created False, one row."""
    conversation = Conversation.objects.create()
    first = _post(conversation, "hello", "c-1")
    again = _post(conversation, "hello again", "c-1")
    assert first.created and not again.created
    assert again.message.pk == first.message.pk and again.message.text == "hello"
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_same_client_id_in_two_conversations_is_two_messages():
    """client_id is unique per conversation only: another conversation may reuse it."""
    one, two = Conversation.objects.create(), Conversation.objects.create()
    a = _post(one, "a", "same")
    b = _post(two, "b", "same")
    assert a.created and b.created and a.message.pk != b.message.pk


def test_resend_inside_an_outer_transaction_keeps_it_usable():
    """Called inside a caller's transaction, a duplicate rolls back only its own savepoint."""
    conversation = Conversation.objects.create()
    _post(conversation, "x", "dup")
    with transaction.atomic():
        again = _post(conversation, "x", "dup")
        later = _post(conversation, "y", "new")
    assert not again.created and later.created
    assert list(Message.objects.filter(conversation=conversation).values_list("client_id", flat=True)) == ["dup", "new"]


def test_closed_conversation_refuses_even_a_resend():
    """After close, a post (new or resent client_id) raises conversation_closed and stores nothing."""
    conversation = Conversation.objects.create()
    _post(conversation, "x", "one")
    services.conversation_close(conversation=conversation, user=None)
    for client_id in ("one", "two"):
        with pytest.raises(SwitchboardError) as raised:
            _post(conversation, "x", client_id)
        assert raised.value.code == "conversation_closed"
    assert Message.objects.filter(conversation=conversation, sender="customer").count() == 1


def test_updated_at_moves_only_when_older_than_the_resolution():
    """A message bumps a stale updated_at to now; a fresh one (under the resolution) is left alone."""
    stale = _aged(Conversation.objects.create(), services.UPDATED_AT_RESOLUTION_SECONDS + 60)
    _post(stale, "x", "a")
    bumped = Conversation.objects.get(pk=stale.pk).updated_at
    assert timezone.now() - bumped < timedelta(seconds=30)
    fresh = _aged(stale, 1)
    _post(fresh, "y", "b")
    assert Conversation.objects.get(pk=stale.pk).updated_at == fresh.updated_at


def test_first_agent_reply_assigns_the_agent_even_when_fresh(agent_user):
    """The first agent reply sets assigned_agent regardless of the updated_at resolution."""
    conversation = Conversation.objects.create()
    _post(conversation, "hi", "r", author=agent_user)
    assert Conversation.objects.get(pk=conversation.pk).assigned_agent_id == agent_user.pk


def test_a_posts_committed_events_come_back_with_its_outcome_and_none_are_sent(monkeypatch):
    """The batch hands each message's committed events to its caller; the DB thread sends nothing."""
    sent = []
    monkeypatch.setattr(broadcast, "async_to_sync", lambda send: lambda group, event: sent.append(group))
    conversation = Conversation.objects.create()
    request = services.PostRequest(conversation_id=conversation.pk, text="x", client_id="a")
    [(result, events)] = services.messages_post(requests=[request])
    assert result.created and sent == []
    assert [group for group, _ in events] == [broadcast.conversation_group(conversation.pk)]
    assert events[0][1]["message"]["client_id"] == "a"


def test_broadcasts_collected_holds_committed_events_for_the_caller(monkeypatch):
    """Inside broadcasts_collected a committed close's events land in the outbox, none are sent."""
    sent = []
    monkeypatch.setattr(broadcast, "async_to_sync", lambda send: lambda group, event: sent.append(group))
    conversation = Conversation.objects.create()
    with broadcast.broadcasts_collected() as outbox:
        services.conversation_close(conversation=conversation, user=None)
    assert sent == []
    assert [group for group, _ in outbox.events] == [
        broadcast.conversation_group(conversation.pk),
        broadcast.WAITING_GROUP,
    ]


def test_broadcast_committing_after_the_block_is_sent_not_dropped(monkeypatch):
    """An event whose transaction commits after broadcasts_collected has closed is sent at once."""
    sent = []
    monkeypatch.setattr(broadcast, "async_to_sync", lambda send: lambda group, event: sent.append(group))
    conversation = Conversation.objects.create()
    with transaction.atomic():
        with broadcast.broadcasts_collected() as outbox:
            services.conversation_close(conversation=conversation, user=None)
    assert outbox.events == []
    assert sent == [broadcast.conversation_group(conversation.pk), broadcast.WAITING_GROUP]


def test_a_refused_post_has_no_events():
    """A post that is refused (closed conversation) broadcasts nothing."""
    conversation = Conversation.objects.create()
    services.conversation_close(conversation=conversation, user=None)
    request = services.PostRequest(conversation_id=conversation.pk, text="x", client_id="a")
    [(result, events)] = services.messages_post(requests=[request])
    assert isinstance(result, SwitchboardError) and events == []


def test_a_first_message_starts_the_conversation_and_a_refused_one_starts_none():
    """conversation_id None: a valid first message creates the conversation; an invalid one creates no row."""
    refused = services.PostRequest(conversation_id=None, text="   ", client_id="a")
    first = services.PostRequest(conversation_id=None, text="my card is blocked", client_id="b")
    [(error, _), (result, events)] = services.messages_post(requests=[refused, first])
    assert isinstance(error, SwitchboardError) and error.code == "empty_text"
    assert result.started and result.created and result.conversation.token
    assert list(Conversation.objects.values_list("pk", flat=True)) == [result.conversation.pk]
    assert [group for group, _ in events] == [broadcast.conversation_group(result.conversation.pk)]


def test_purge_deletes_only_old_conversations_without_messages():
    """Old and empty: deleted; old with a message, or empty but recent: kept."""
    old_empty, old_used, new_empty = (Conversation.objects.create() for _ in range(3))
    _post(old_used, "hello", "c")
    Conversation.objects.filter(pk__in=[old_empty.pk, old_used.pk]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    assert services.conversations_purge_empty(older_than_seconds=3600) == 1
    assert set(Conversation.objects.values_list("pk", flat=True)) == {old_used.pk, new_empty.pk}


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

    monkeypatch.setattr(broadcast, "get_channel_layer", SlowLayer)
    await asyncio.gather(*(broadcast.broadcasts_send([("g", {"n": n}), ("h", {"n": n})]) for n in range(300)))
    assert peak == broadcast.LAYER_CONCURRENCY


def _request(conversation: Conversation, text: object, client_id: object) -> services.PostRequest:
    return services.PostRequest(conversation_id=conversation.pk, text=text, client_id=client_id)


def test_batch_stores_each_message_once_and_answers_in_request_order():
    """One batch over several conversations: one outcome per request, in order, each row stored once."""
    one, two = Conversation.objects.create(), Conversation.objects.create()
    outcomes = services.messages_post(
        requests=[_request(one, "a", "1"), _request(two, "b", "1"), _request(one, "c", "2")]
    )
    results = [result for result, _ in outcomes]
    assert [r.message.text for r in results] == ["a", "b", "c"] and all(r.created for r in results)
    assert list(Message.objects.filter(conversation=one).values_list("text", flat=True)) == ["a", "c"]
    assert results[0].message.pk < results[2].message.pk


def test_batch_refuses_bad_and_closed_messages_one_by_one_and_stores_the_rest():
    """Invalid text and a closed conversation get their own errors; the others in the batch are stored."""
    open_one, closed = Conversation.objects.create(), Conversation.objects.create()
    services.conversation_close(conversation=closed, user=None)
    outcomes = services.messages_post(
        requests=[_request(open_one, "  ", "x"), _request(closed, "hi", "y"), _request(open_one, "ok", "z")]
    )
    assert [getattr(result, "code", None) for result, _ in outcomes] == ["empty_text", "conversation_closed", None]
    assert [events for _, events in outcomes][:2] == [[], []]
    assert list(Message.objects.filter(sender="customer").values_list("client_id", flat=True)) == ["z"]


def test_batch_with_resends_returns_the_stored_messages_and_stores_the_new_one():
    """A client_id stored before, or twice in one batch, is stored once; the new message beside it is stored."""
    conversation = Conversation.objects.create()
    first = _post(conversation, "first", "one")
    outcomes = services.messages_post(
        requests=[
            _request(conversation, "first", "one"),
            _request(conversation, "new", "two"),
            _request(conversation, "new", "two"),
        ]
    )
    (again, again_events), (new, new_events), (twice, _) = outcomes
    assert not again.created and again.message.pk == first.message.pk and again_events == []
    assert new.created and not twice.created and twice.message.pk == new.message.pk
    assert [group for group, _ in new_events] == [broadcast.conversation_group(conversation.pk)]
    assert list(Message.objects.filter(conversation=conversation).values_list("client_id", flat=True)) == ["one", "two"]


def test_batch_broadcasts_go_to_the_inbox_of_a_routed_conversation(teams):
    """A routed conversation's message is announced to its conversation group and its team inbox."""
    conversation = Conversation.objects.create()
    Conversation.objects.filter(pk=conversation.pk).update(team=teams[0], routed_at=timezone.now())
    [(result, events)] = services.messages_post(requests=[_request(conversation, "more", "m")])
    assert result.routed
    assert [group for group, _ in events] == [broadcast.conversation_group(conversation.pk), "team.billing"]
    assert events[1][1]["message"]["text"] == "more"


def test_a_lock_that_waited_for_a_routing_sees_the_routed_team(teams):
    """A message batch that locks a conversation while its routing commits gets the team with it.

    On PostgreSQL the routing runs on another connection and commits while the lock waits (the
    race that once gave team_id set and team None, failing the whole batch); SQLite has no row
    locks, so there the routing simply commits first.
    """
    import threading
    import time

    from django.db import connection

    conversation = Conversation.objects.create()
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
    outcomes = services.messages_post(
        requests=[services.PostRequest(conversation_id=conversation.pk, text="still there?", client_id="c-9")]
    )
    assert outcomes[0][0].created
