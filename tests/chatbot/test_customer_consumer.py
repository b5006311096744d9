"""The customer socket /ws/chat/: start, resume, acks, routing, limits and bad input."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from chatbot.models import Conversation, Message, RoutingEvent
from routing.models import ModelVersion
from tests.chatbot.conftest import agent_socket, communicator, customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _messages(conversation_id: int) -> list[tuple[str, str, str]]:
    return list(Message.objects.filter(conversation_id=conversation_id).values_list("sender", "text", "client_id"))


@database_sync_to_async
def _conversation(conversation_id: int) -> Conversation:
    return Conversation.objects.select_related("team", "predicted_team", "model_version").get(pk=conversation_id)


@database_sync_to_async
def _routing_events(conversation_id: int) -> list[RoutingEvent]:
    return list(RoutingEvent.objects.filter(conversation_id=conversation_id).select_related("team"))


async def test_new_conversation_stores_acks_and_routes_to_confident_team(teams, agent_user, keyword_router):
    """A first message is stored, acked, routed to the predicted team and announced to its inbox."""
    agent, _ = await agent_socket(agent_user)
    socket, first = await customer_socket()
    assert first == {
        "type": "history",
        "messages": [],
        "status": "open",
        "team": None,
        "team_name": None,
        "triage": True,
    }

    await socket.send_json_to({"type": "message", "text": "Where is my refund?", "client_id": "c-1"})
    started = await receive_type(socket, "conversation")
    assert started["token"] and isinstance(started["id"], int)
    ack = await receive_type(socket, "ack")
    routed = await receive_type(socket, "routed")
    assigned = await receive_type(agent, "conversation.assigned")

    assert await _messages(started["id"]) == [("customer", "Where is my refund?", "c-1")]
    assert ack["client_id"] == "c-1" and isinstance(ack["message_id"], int)
    assert routed == {"type": "routed", "team": "billing", "team_name": "Billing", "triage": False, "reason": "routed"}
    assert assigned["conversation"]["id"] == started["id"]
    assert assigned["conversation"]["team"] == "billing" and assigned["conversation"]["confidence"] == 0.95
    assert [m["text"] for m in assigned["messages"]] == ["Where is my refund?"]
    [event] = await _routing_events(started["id"])
    assert (event.team.slug, event.triage, event.confidence) == ("billing", False, 0.95)
    await socket.disconnect()
    await agent.disconnect()


async def test_later_messages_reach_the_team_inbox(teams, agent_user, keyword_router):
    """After routing, each customer message is broadcast to the team's agents (the joined text still
    points to the same team, so the conversation stays)."""
    agent, _ = await agent_socket(agent_user)
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "invoice is wrong", "client_id": "a"})
    started = await receive_type(socket, "conversation")
    await receive_type(agent, "conversation.assigned")
    await socket.send_json_to({"type": "message", "text": "the invoice total too", "client_id": "b"})
    message = await receive_type(agent, "message")
    assert (message["conversation_id"], message["text"], message["sender"]) == (
        started["id"],
        "the invoice total too",
        "customer",
    )
    assert keyword_router.seen[0] == "invoice is wrong"
    assert (await _conversation(started["id"])).team.slug == "billing"
    await socket.disconnect()
    await agent.disconnect()


async def test_unsure_prediction_goes_to_triage_with_model_version(teams, agent_user, keyword_router):
    """A low-confidence prediction leaves the team empty (triage) and records the model version."""
    version = await database_sync_to_async(ModelVersion.objects.create)(artifact_dir="x", sha256="0" * 64)
    keyword_router.model_version = str(version.pk)
    agent, _ = await agent_socket(agent_user)
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "something odd happened", "client_id": "a"})
    started = await receive_type(socket, "conversation")
    assigned = await receive_type(agent, "conversation.assigned")
    assert assigned["conversation"]["triage"] is True and assigned["conversation"]["predicted_team"] == "bugs"
    conversation = await _conversation(started["id"])
    assert conversation.team is None and conversation.model_version_id == version.pk
    [event] = await _routing_events(started["id"])
    assert event.triage and event.model_version_id == version.pk and event.team.slug == "bugs"
    await socket.disconnect()
    await agent.disconnect()


async def test_no_model_sends_conversation_to_triage(teams, agent_user, no_model_router):
    """With no trained model the conversation still reaches agents, through the triage queue."""
    agent, _ = await agent_socket(agent_user)
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "refund please", "client_id": "a"})
    started = await receive_type(socket, "conversation")
    assert (await receive_type(socket, "routed"))["triage"] is True
    assigned = await receive_type(agent, "conversation.assigned")
    assert assigned["conversation"]["triage"] is True and assigned["conversation"]["predicted_team"] is None
    [event] = await _routing_events(started["id"])
    assert event.triage and event.model_version_id is None and event.team is None
    await socket.disconnect()
    await agent.disconnect()


async def test_resend_with_same_client_id_returns_same_ack_and_stores_once(teams, keyword_router):
    """A resend after reconnecting is acked with the original id; nothing is doubled, order is kept."""
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "first", "client_id": "one"})
    started = await receive_type(socket, "conversation")
    first = await receive_type(socket, "ack")
    await socket.disconnect()

    socket, history = await customer_socket(started["token"])
    assert history["type"] == "history" and [m["text"] for m in history["messages"]] == ["first"]
    await socket.send_json_to({"type": "message", "text": "first", "client_id": "one"})
    again = await receive_type(socket, "ack")
    await socket.send_json_to({"type": "message", "text": "second", "client_id": "two"})
    second = await receive_type(socket, "ack")
    assert again == first and second["message_id"] > first["message_id"]
    assert [text for _, text, _ in await _messages(started["id"])] == ["first", "second"]
    await socket.disconnect()


async def test_unknown_token_gets_error_and_close_4403(teams):
    """A token that names no conversation is refused: error frame, then close code 4403."""
    socket, frame = await customer_socket("not-a-real-token")
    assert frame["type"] == "error" and frame["code"] == "bad_token"
    assert (await socket.receive_output())["code"] == 4403


@pytest.mark.parametrize(
    "raw, code",
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"text": "no type"}', "bad_frame"),
        ('{"type": "shout"}', "bad_frame"),
        ('{"type": "message", "client_id": "x"}', "invalid_text"),
        ('{"type": "message", "text": 5, "client_id": "x"}', "invalid_text"),
        ('{"type": "message", "text": "   ", "client_id": "x"}', "empty_text"),
        ('{"type": "message", "text": "hi"}', "invalid_client_id"),
        ('{"type": "message", "text": "hi", "client_id": 7}', "invalid_client_id"),
        (json.dumps({"type": "message", "text": "x" * 5001, "client_id": "x"}), "text_too_long"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_up(teams, keyword_router, raw, code):
    """Each malformed frame is answered with a specific error; the next good message still works."""
    socket, _ = await customer_socket()
    await socket.send_to(text_data=raw)
    error = await receive_type(socket, "error")
    assert error["code"] == code and error["detail"]
    await socket.send_json_to({"type": "message", "text": "fine now", "client_id": "ok"})
    started = await receive_type(socket, "conversation")
    assert (await receive_type(socket, "ack"))["client_id"] == "ok"
    assert [text for _, text, _ in await _messages(started["id"])] == ["fine now"]
    await socket.disconnect()


async def test_refused_message_error_names_its_client_id(teams, keyword_router):
    """A message refused for good is named in the error, so the widget stops resending it."""
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "z" * 5001, "client_id": "too-long-1"})
    error = await receive_type(socket, "error")
    assert (error["code"], error["client_id"]) == ("text_too_long", "too-long-1")
    await socket.send_to(text_data="not json")
    assert "client_id" not in await receive_type(socket, "error")
    await socket.disconnect()


async def test_oversized_frame_is_refused_without_closing(teams, keyword_router, settings):
    """A frame over CHAT_MAX_FRAME_BYTES is refused with an error; the connection stays usable."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_MAX_FRAME_BYTES": 200}
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "y" * 300, "client_id": "big"})
    assert (await receive_type(socket, "error"))["code"] == "frame_too_large"
    await socket.send_json_to({"type": "message", "text": "small", "client_id": "small"})
    started = await receive_type(socket, "conversation")
    assert (await receive_type(socket, "ack"))["client_id"] == "small"
    assert [cid for _, _, cid in await _messages(started["id"])] == ["small"]
    await socket.disconnect()


async def test_grossly_oversized_frame_closes_the_socket(teams, settings):
    """A frame many times the limit is abuse: error frame, then close 4429."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_MAX_FRAME_BYTES": 100}
    socket, _ = await customer_socket()
    await socket.send_to(text_data="z" * 1000)
    assert (await receive_type(socket, "error"))["code"] == "frame_too_large"
    assert (await socket.receive_output())["code"] == 4429


async def test_flood_is_refused_then_closed(teams, keyword_router, settings):
    """Over CHAT_MESSAGES_PER_10S messages are refused unstored; persisting in it closes the socket."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_MESSAGES_PER_10S": 3}
    socket, _ = await customer_socket()
    started = None
    for index in range(3):
        await socket.send_json_to({"type": "message", "text": f"m{index}", "client_id": f"c{index}"})
        if index == 0:
            started = await receive_type(socket, "conversation")
        await receive_type(socket, "ack")
    await socket.send_json_to({"type": "message", "text": "m3", "client_id": "c3"})
    assert (await receive_type(socket, "error"))["code"] == "rate_limited"
    assert len(await _messages(started["id"])) == 3
    for index in range(4, 6):
        await socket.send_json_to({"type": "message", "text": f"m{index}", "client_id": f"c{index}"})
    assert (await receive_type(socket, "error"))["code"] == "rate_limited"
    assert (await receive_type(socket, "error"))["code"] == "rate_limited"
    assert (await socket.receive_output())["code"] == 4429
    assert len(await _messages(started["id"])) == 3


async def test_customer_only_sees_own_conversation(teams, keyword_router):
    """Two customers' messages never cross: each socket hears only its own conversation."""
    alice, _ = await customer_socket()
    bob, _ = await customer_socket()
    await alice.send_json_to({"type": "message", "text": "alice's secret invoice", "client_id": "a"})
    await receive_type(alice, "ack")
    await bob.send_json_to({"type": "message", "text": "bob here", "client_id": "b"})
    await receive_type(bob, "ack")
    frames = []
    while not await bob.receive_nothing(timeout=0.2):
        frames.append(await bob.receive_json_from())
    assert all("alice" not in json.dumps(frame) for frame in frames)
    await alice.disconnect()
    await bob.disconnect()


async def test_message_is_echoed_to_the_conversations_other_sockets_not_the_sender(teams, keyword_router):
    """Two tabs on one conversation: the sender gets the ack, the other tab gets the message."""
    sender, _ = await customer_socket()
    await sender.send_json_to({"type": "message", "text": "about my invoice", "client_id": "t0"})
    started = await receive_type(sender, "conversation")
    await receive_type(sender, "ack")
    await receive_type(sender, "routed")
    other, _ = await customer_socket(started["token"])
    await sender.send_json_to({"type": "message", "text": "invoice twice", "client_id": "t1"})
    await receive_type(sender, "ack")
    echo = await receive_type(other, "message")
    assert (echo["text"], echo["client_id"]) == ("invoice twice", "t1")
    frames = []
    while not await sender.receive_nothing(timeout=0.2):
        frames.append(await sender.receive_json_from())
    assert "message" not in [frame["type"] for frame in frames]
    await sender.disconnect()
    await other.disconnect()


async def test_a_tokenless_handshake_stores_nothing_until_the_first_message(teams, keyword_router):
    """Sockets that connect and never write leave no row behind (the first message starts the conversation)."""
    sockets = [(await customer_socket())[0] for _ in range(5)]
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    await sockets[0].send_json_to({"type": "message", "text": "hello", "client_id": "h"})
    started = await receive_type(sockets[0], "conversation")
    assert await database_sync_to_async(Conversation.objects.count)() == 1
    assert (await receive_type(sockets[0], "ack"))["client_id"] == "h"
    assert (await database_sync_to_async(Conversation.objects.get)()).pk == started["id"]
    for socket in sockets:
        await socket.disconnect()


async def test_handshakes_over_the_limit_per_address_are_refused(teams, settings):
    """CHAT_HANDSHAKES_PER_MINUTE per client address: the next one gets too_many_connections and 4429."""
    from django.core.cache import cache

    await database_sync_to_async(cache.clear)()
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_HANDSHAKES_PER_MINUTE": 3}
    sockets = [(await customer_socket())[0] for _ in range(3)]
    refused = communicator("/ws/chat/")
    connected, _ = await refused.connect()
    assert connected  # accepted only to explain why it closes
    assert (await refused.receive_json_from())["code"] == "too_many_connections"
    assert (await refused.receive_output())["code"] == 4429
    for socket in sockets:
        await socket.disconnect()


async def test_concurrent_handshakes_are_all_counted(settings):
    """Handshakes from one address arriving together each count: 20 at once with a limit of 5 let
    exactly 5 in (Django's async ``aincr`` is a get then a set: concurrent ones lost their counts)."""
    import asyncio

    from chatbot.handshakes import handshake_allowed

    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "CHAT_HANDSHAKES_PER_MINUTE": 5}
    scope = {"client": ("203.0.113.77", 5000), "headers": []}
    allowed = await asyncio.gather(*(handshake_allowed(scope) for _ in range(20)))
    assert sum(allowed) == 5
    assert not await handshake_allowed(scope)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, b"6.6.6.6", "10.0.0.1"),
        (1, b"6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (2, b"6.6.6.6, 203.0.113.9", "6.6.6.6"),
        (2, b"203.0.113.9", "10.0.0.1"),
    ],
)
def test_client_address_trusts_only_the_configured_number_of_proxies(settings, proxies, forwarded, expected):
    """The address the outermost trusted proxy saw; a header shorter than the proxy chain is not trusted."""
    from chatbot.handshakes import client_address

    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "TRUSTED_PROXY_COUNT": proxies}
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-forwarded-for", forwarded)]}
    assert client_address(scope) == expected
