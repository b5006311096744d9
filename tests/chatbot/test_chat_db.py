"""Batcher: customer messages from many sockets share transactions, each still answered alone."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chatbot import services
from chatbot.chat_db import Batcher, posts_store
from chatbot.core.errors import SwitchboardError
from chatbot.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


async def test_messages_waiting_together_are_written_in_batches_of_at_most_max(monkeypatch):
    """Twenty posts at once go in ceil(20/8) transactions; every socket gets its own stored message."""
    sizes = []
    real = services.messages_post

    def recording(*, requests):
        sizes.append(len(requests))
        return real(requests=requests)

    monkeypatch.setattr(services, "messages_post", recording)
    conversations = [await database_sync_to_async(Conversation.objects.create)() for _ in range(20)]
    batcher = Batcher(posts_store, max_batch=8)
    requests = [services.PostRequest(conversation_id=c.pk, text=f"m{c.pk}", client_id="x") for c in conversations]
    outcomes = await asyncio.gather(*(batcher.submit(request) for request in requests))
    assert sizes == [8, 8, 4]
    assert [result.message.conversation_id for result, _ in outcomes] == [c.pk for c in conversations]
    assert await database_sync_to_async(Message.objects.count)() == 20


async def test_a_refused_message_raises_for_its_socket_only():
    """In one batch, the refused message raises its SwitchboardError; its neighbour is stored."""
    conversation = await database_sync_to_async(Conversation.objects.create)()
    batcher = Batcher(posts_store)
    good = services.PostRequest(conversation_id=conversation.pk, text="fine", client_id="a")
    bad = services.PostRequest(conversation_id=conversation.pk, text="", client_id="b")
    stored, refused = await asyncio.gather(batcher.submit(good), batcher.submit(bad), return_exceptions=True)
    assert stored[0].created and isinstance(refused, SwitchboardError) and refused.code == "empty_text"


async def test_a_failed_transaction_fails_every_message_of_the_batch_and_the_next_batch_works(monkeypatch):
    """A database error reaches each waiting socket (none is acked); later posts are written again."""
    conversation = await database_sync_to_async(Conversation.objects.create)()
    real = services.messages_post

    def broken(*, requests):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "messages_post", broken)
    batcher = Batcher(posts_store)
    requests = [services.PostRequest(conversation_id=conversation.pk, text="t", client_id=c) for c in "ab"]
    outcomes = await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    monkeypatch.setattr(services, "messages_post", real)
    result, _ = await batcher.submit(requests[0])
    assert result.created
