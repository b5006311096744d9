"""Bad input over the chat (issue 14): refused with an error frame and nothing stored, or stored and
routed like any text; either way the conversation keeps working."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chatbot.models import Conversation, Message
from tests.chatbot.conftest import customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def _say(socket, text, client_id: str) -> None:
    await socket.send_json_to({"type": "message", "text": text, "client_id": client_id})


@database_sync_to_async
def _texts(conversation_id: int) -> list[str]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("id").values_list("text", flat=True))


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b\u200b"])
async def test_empty_messages_mid_conversation_are_refused_and_it_keeps_working(teams, keyword_router, text):
    """Empty, whitespace-only or invisible text after the first message: empty_text naming the client_id,
    nothing stored; the next message is acked in the same conversation."""
    socket, _ = await customer_socket()
    await _say(socket, "my invoice is wrong", "1")
    started = await receive_type(socket, "conversation")
    await receive_type(socket, "ack")
    await _say(socket, text, "2")
    error = await receive_type(socket, "error")
    assert (error["code"], error["client_id"]) == ("empty_text", "2")
    await _say(socket, "still wrong", "3")
    assert (await receive_type(socket, "ack"))["client_id"] == "3"
    assert await _texts(started["id"]) == ["my invoice is wrong", "still wrong"]
    await socket.disconnect()


@pytest.mark.parametrize("text", ["👍", "🙂🙂🙂", "k", "?", "Hola, my invoice est faux, danke"])
async def test_emoji_one_character_and_mixed_language_messages_are_stored_and_routed(teams, keyword_router, text):
    """Such a first message starts a conversation, is acked and placed (an inbox, triage or waiting)."""
    socket, _ = await customer_socket()
    await _say(socket, text, "1")
    started = await receive_type(socket, "conversation")
    await receive_type(socket, "ack")
    routed = await receive_type(socket, "routed")
    assert routed["reason"] in {"routed", "low_confidence"}
    assert await _texts(started["id"]) == [text]
    await _say(socket, "and my password", "2")
    assert (await receive_type(socket, "ack"))["client_id"] == "2"
    await socket.disconnect()


async def test_a_conversation_of_200_messages_keeps_every_message_and_its_routing(teams, keyword_router, settings):
    """200 customer messages are each acked and stored once; a resumed socket gets all 200, and the
    conversation is still routed on its newest turns."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_MESSAGES_PER_10S": 1000}
    socket, _ = await customer_socket()
    for index in range(199):
        await _say(socket, f"about my invoice, part {index}", str(index))
        await receive_type(socket, "ack")
    await _say(socket, "in fact my password", "199")
    await receive_type(socket, "ack")
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert len(await _texts(conversation.pk)) == 200
    for _ in range(50):  # routing runs beside the socket: wait for the newest turn to be read
        conversation = await database_sync_to_async(Conversation.objects.select_related("team").get)()
        if conversation.team and conversation.team.slug == "accounts":
            break
        await socket.receive_nothing(timeout=0.05)
    assert conversation.team.slug == "accounts"
    resumed, history = await customer_socket(conversation.token)
    assert len(history["messages"]) == 200 and history["team"] == "accounts"
    await socket.disconnect()
    await resumed.disconnect()
