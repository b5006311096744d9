"""The widget's conversation key: a first message resent after its answer was lost finds its conversation."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chatbot import services
from chatbot.models import Conversation, Message
from tests.chatbot.conftest import customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "k" * 10 + "Zq3_-Lm9x8Wv7Ut6Sr5Qp4"  # 32 URL-safe characters, as the widget makes them


def _first(text: str, client_id: str, key: str | None = KEY) -> dict:
    frame = {"type": "message", "text": text, "client_id": client_id}
    return frame if key is None else {**frame, "conversation_key": key}


@database_sync_to_async
def _rows() -> tuple[int, list[tuple[int, str, str]]]:
    messages = Message.objects.order_by("id").values_list("conversation_id", "text", "client_id")
    return Conversation.objects.count(), list(messages)


async def test_a_lost_first_answer_resent_with_the_key_finds_the_same_conversation(teams, keyword_router):
    """The first socket drops before its conversation frame is read; the resend on a new socket without
    a token gets the same conversation, its token and the original ack: nothing doubled."""
    lost, _ = await customer_socket()
    await lost.send_json_to(_first("Where is my refund?", "c-1"))
    await receive_type(lost, "ack")  # stored; the widget never saw these frames
    await lost.disconnect()
    again, _ = await customer_socket()
    await again.send_json_to(_first("Where is my refund?", "c-1"))
    found = await receive_type(again, "conversation")
    ack = await receive_type(again, "ack")
    count, messages = await _rows()
    assert count == 1 and messages == [(found["id"], "Where is my refund?", "c-1")]
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert found["token"] == conversation.token and ack["client_id"] == "c-1"
    await again.send_json_to({"type": "message", "text": "and my invoice", "client_id": "c-2"})
    await receive_type(again, "ack")
    assert [m[0] for m in (await _rows())[1]] == [found["id"]] * 2
    await again.disconnect()


async def test_a_second_message_with_the_key_joins_the_conversation(teams, keyword_router):
    """Before the token arrives every message carries the key: a new one lands in the same conversation."""
    first, _ = await customer_socket()
    await first.send_json_to(_first("hello", "a"))
    await receive_type(first, "ack")
    second, _ = await customer_socket()
    await second.send_json_to(_first("my invoice is wrong", "b"))
    assert (await receive_type(second, "conversation"))["id"] == (await _rows())[1][0][0]
    count, messages = await _rows()
    assert count == 1 and [m[2] for m in messages] == ["a", "b"]
    await first.disconnect()
    await second.disconnect()


async def test_without_the_same_key_a_resend_starts_its_own_conversation(teams, keyword_router):
    """Another key, or none (a widget from before the key), never reaches someone else's conversation."""
    for key in (KEY, KEY[::-1], None):
        socket, _ = await customer_socket()
        await socket.send_json_to(_first("hello there", "same-id", key))
        await receive_type(socket, "ack")
        await socket.disconnect()
    count, messages = await _rows()
    assert count == 3 and len({m[0] for m in messages}) == 3


@pytest.mark.parametrize("key", ["short", 42, "x" * 65, "has spaces in it and is long enough"])
async def test_a_bad_key_is_refused_and_starts_nothing(teams, keyword_router, key):
    """A key that is not 22-64 URL-safe characters gets an error frame; the socket keeps working."""
    socket, _ = await customer_socket()
    await socket.send_json_to(_first("hello", "x", key))
    error = await receive_type(socket, "error")
    assert (error["code"], error["client_id"]) == ("invalid_conversation_key", "x")
    assert await _rows() == (0, [])
    await socket.send_json_to(_first("hello", "y"))
    await receive_type(socket, "conversation")
    await socket.disconnect()


def test_one_batch_with_a_key_twice_starts_one_conversation(db):
    """Two first messages with one key written together (two sockets, one group commit) share a conversation."""
    requests = [
        services.PostRequest(conversation_id=None, text=text, client_id=client_id, conversation_key=KEY)
        for text, client_id in (("hi", "1"), ("refund", "2"))
    ]
    (first, _), (second, _) = services.messages_post(requests=requests)
    assert first.conversation.pk == second.conversation.pk and first.started and second.started
    assert Conversation.objects.count() == 1 and Message.objects.count() == 2
