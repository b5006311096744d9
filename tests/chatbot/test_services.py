"""Chat write services: idempotent posts, updated_at bumps, and broadcasts collected for the caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from chatbot import services
from chatbot.errors import SwitchboardError
from chatbot.models import Conversation, Message

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
