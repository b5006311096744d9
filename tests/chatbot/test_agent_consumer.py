"""The agent socket /ws/agent/: auth, inboxes, replies, reassign (corrections), close, typing, presence."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from chatbot.models import Conversation, Message
from finetune.models import Ticket
from tests.chatbot.conftest import agent_socket, communicator, customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def _routed_conversation(text: str) -> tuple:
    """A customer socket whose first message has been routed; returns (socket, conversation id)."""
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": text, "client_id": "first"})
    started = await receive_type(socket, "conversation")
    await receive_type(socket, "routed")
    return socket, started["id"]


@database_sync_to_async
def _user(username: str, *, team=None, staff: bool = False):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-123456789", is_staff=staff)
    if team is not None:
        team.members.add(user)
    return user


async def test_anonymous_agent_is_refused_with_4401(teams):
    """A socket without a session gets an error frame and close 4401."""
    socket = communicator("/ws/agent/")
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from())["code"] == "unauthenticated"
    assert (await socket.receive_output())["code"] == 4401


async def test_logged_in_non_member_is_refused_with_4403(teams, plain_user):
    """A logged-in user who is neither staff nor in a team gets close 4403."""
    from tests.chatbot.conftest import _session_cookie

    socket = communicator("/ws/agent/", await database_sync_to_async(_session_cookie)(plain_user))
    await socket.connect()
    assert (await socket.receive_json_from())["code"] == "forbidden"
    assert (await socket.receive_output())["code"] == 4403


async def test_inbox_lists_own_team_and_triage_only(teams, agent_user, keyword_router):
    """An agent's inbox frame holds their team's and triage conversations, not other teams'."""
    billing, billing_id = await _routed_conversation("refund my invoice")
    bugs, bugs_id = await _routed_conversation("app crash on start")
    triage, triage_id = await _routed_conversation("hello there")
    agent, inbox = await agent_socket(agent_user)
    assert inbox["teams"] == [{"slug": "billing", "name": "Billing"}]
    assert {c["id"] for c in inbox["conversations"]} == {billing_id, triage_id}
    staff = await _user("boss", staff=True)
    boss, staff_inbox = await agent_socket(staff)
    assert {c["id"] for c in staff_inbox["conversations"]} == {billing_id, bugs_id, triage_id}
    for socket in (billing, bugs, triage, agent, boss):
        await socket.disconnect()


async def test_conversations_of_a_deactivated_team_wait_in_triage(teams, agent_user, keyword_router):
    """Deactivating a team moves its open conversations to every agent's triage queue."""
    bugs, bugs_id = await _routed_conversation("app crash on start")
    await database_sync_to_async(lambda: type(teams[2]).objects.filter(pk=teams[2].pk).update(active=False))()
    agent, inbox = await agent_socket(agent_user)
    summary = next(c for c in inbox["conversations"] if c["id"] == bugs_id)
    assert (summary["team"], summary["triage"]) == ("bugs", True)
    for socket in (bugs, agent):
        await socket.disconnect()


async def test_reply_reaches_customer_and_is_acked(teams, agent_user, keyword_router):
    """An agent's reply is stored once, acked, and delivered to the customer with the author."""
    customer, conversation_id = await _routed_conversation("invoice question")
    agent, _ = await agent_socket(agent_user)
    await agent.send_json_to({"type": "open", "conversation_id": conversation_id})
    history = await receive_type(agent, "history")
    assert [m["text"] for m in history["messages"]] == ["invoice question"]
    for _ in range(2):
        await agent.send_json_to(
            {"type": "reply", "conversation_id": conversation_id, "text": "On it!", "client_id": "r1"}
        )
        ack = await receive_type(agent, "ack")
    message = await receive_type(customer, "message")
    while message["sender"] != "agent":
        message = await receive_type(customer, "message")
    assert (message["text"], message["author"], message["id"]) == ("On it!", "agent", ack["message_id"])
    count = await database_sync_to_async(Message.objects.filter(sender="agent").count)()
    assert count == 1
    await customer.disconnect()
    await agent.disconnect()


async def test_agent_cannot_touch_another_teams_conversation(teams, agent_user, keyword_router):
    """Open, reply, reassign and close on a conversation outside the agent's teams are 'not found'."""
    customer, conversation_id = await _routed_conversation("app crash")
    agent, _ = await agent_socket(agent_user)
    frames = [
        {"type": "open", "conversation_id": conversation_id},
        {"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "x"},
        {"type": "reassign", "conversation_id": conversation_id, "team": "billing"},
        {"type": "close", "conversation_id": conversation_id},
        {"type": "open", "conversation_id": "1"},
    ]
    for frame in frames:
        await agent.send_json_to(frame)
        assert (await receive_type(agent, "error"))["code"] in {"not_found", "invalid_conversation"}
    conversation = await database_sync_to_async(Conversation.objects.select_related("team").get)(pk=conversation_id)
    assert conversation.team.slug == "bugs" and conversation.status == "open"
    await customer.disconnect()
    await agent.disconnect()


async def test_reassign_from_triage_records_correction_ticket(teams, agent_user, keyword_router):
    """Assigning a triage conversation to a team moves it, tells the customer and records a correction."""
    customer, conversation_id = await _routed_conversation("hello, something odd")
    agent, _ = await agent_socket(agent_user)
    await agent.send_json_to({"type": "reassign", "conversation_id": conversation_id, "team": "billing"})
    updated = await receive_type(agent, "conversation.updated")
    assigned = await receive_type(agent, "conversation.assigned")
    assert updated["conversation"]["team"] == "billing" and assigned["conversation"]["team"] == "billing"
    routed = await receive_type(customer, "routed")
    assert routed == {
        "type": "routed",
        "team": "billing",
        "team_name": "Billing",
        "triage": False,
        "reason": "reassigned",
    }
    ticket = await database_sync_to_async(
        lambda: Ticket.objects.select_related("team", "corrected_from", "labelled_by").get()
    )()
    assert ticket.source == Ticket.Source.CORRECTION and ticket.text == "hello, something odd"
    assert (ticket.team.slug, ticket.corrected_from.slug, ticket.labelled_by.username) == ("billing", "bugs", "agent")
    assert ticket.meta["conversation_id"] == conversation_id
    await customer.disconnect()
    await agent.disconnect()


async def test_reassign_to_another_team_leaves_the_inbox(teams, agent_user, keyword_router):
    """Moving a billing conversation to bugs updates billing's inbox and labels the ticket 'bugs'."""
    customer, conversation_id = await _routed_conversation("refund for my invoice")
    agent, _ = await agent_socket(agent_user)
    await agent.send_json_to({"type": "reassign", "conversation_id": conversation_id, "team": "bugs"})
    updated = await receive_type(agent, "conversation.updated")
    assert updated["conversation"]["team"] == "bugs"
    ticket = await database_sync_to_async(lambda: Ticket.objects.select_related("team", "corrected_from").get())()
    assert (ticket.team.slug, ticket.corrected_from.slug) == ("bugs", "billing")
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "x", "client_id": "z"})
    assert (await receive_type(agent, "error"))["code"] == "not_found"
    await agent.send_json_to({"type": "reassign", "conversation_id": 10**9, "team": "nope"})
    assert (await receive_type(agent, "error"))["code"] == "not_found"
    await customer.disconnect()
    await agent.disconnect()


async def test_reassign_to_unknown_team_is_an_error(teams, agent_user, keyword_router):
    """An unknown team slug is refused with the list of known teams; nothing is recorded."""
    customer, conversation_id = await _routed_conversation("invoice")
    agent, _ = await agent_socket(agent_user)
    await agent.send_json_to({"type": "reassign", "conversation_id": conversation_id, "team": "sales"})
    error = await receive_type(agent, "error")
    assert error["code"] == "unknown_team" and "billing" in error["detail"]
    assert await database_sync_to_async(Ticket.objects.count)() == 0
    await customer.disconnect()
    await agent.disconnect()


async def test_close_tells_customer_and_refuses_further_messages(teams, agent_user, keyword_router):
    """Closing sends the customer a system message; their next message gets conversation_closed."""
    customer, conversation_id = await _routed_conversation("invoice issue")
    agent, _ = await agent_socket(agent_user)
    await agent.send_json_to({"type": "close", "conversation_id": conversation_id})
    assert (await receive_type(agent, "conversation.updated"))["conversation"]["status"] == "closed"
    notice = await receive_type(customer, "message")
    while notice["sender"] != "system":
        notice = await receive_type(customer, "message")
    await customer.send_json_to({"type": "message", "text": "wait", "client_id": "late"})
    assert (await receive_type(customer, "error"))["code"] == "conversation_closed"
    await customer.disconnect()
    await agent.disconnect()


async def test_typing_flows_both_ways(teams, agent_user, keyword_router):
    """Customer typing reaches the team's agents; agent typing reaches the customer, never the sender."""
    customer, conversation_id = await _routed_conversation("invoice")
    agent, _ = await agent_socket(agent_user)
    await customer.send_json_to({"type": "typing"})
    typing = await receive_type(agent, "typing")
    assert (typing["sender"], typing["conversation_id"]) == ("customer", conversation_id)
    await agent.send_json_to({"type": "typing", "conversation_id": conversation_id})
    assert (await receive_type(customer, "typing"))["sender"] == "agent"
    assert await customer.receive_nothing(timeout=0.2)
    await customer.disconnect()
    await agent.disconnect()


async def test_presence_lists_online_teammates(teams, agent_user):
    """A second agent in the team sees the first online; both see the second leave."""
    first, _ = await agent_socket(agent_user)
    assert (await receive_type(first, "presence"))["online"] == ["agent"]
    second_user = await _user("second", team=teams[0])
    second, _ = await agent_socket(second_user)
    seen = (await receive_type(second, "presence"))["online"]
    while seen != ["agent", "second"]:
        seen = (await receive_type(second, "presence"))["online"]
    assert (await receive_type(first, "presence"))["online"] == ["agent", "second"]
    await second.disconnect()
    assert (await receive_type(first, "presence"))["online"] == ["agent"]
    await first.disconnect()


async def test_presence_drops_a_teammate_whose_heartbeat_stopped(teams, agent_user, settings):
    """An agent whose process died never says goodbye: without its beats it is dropped; a live
    teammate, beating, stays listed."""
    from channels.layers import get_channel_layer

    from chatbot import broadcast

    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "PRESENCE_HEARTBEAT_SECONDS": 0.2}
    first, _ = await agent_socket(agent_user)
    second, _ = await agent_socket(await _user("second", team=teams[0]))
    ghost = {
        "type": "presence.join",
        "team": teams[0].slug,
        "user": "ghost",
        "channel": "ghost-channel-that-stopped",
        "beat_seconds": 0.2,
    }
    await get_channel_layer().group_send(broadcast.team_group(teams[0].slug), ghost)
    seen = []
    while seen != ["agent", "ghost", "second"]:
        seen = (await receive_type(first, "presence"))["online"]
    while seen != ["agent", "second"]:  # 3 beats (0.6 s) later
        seen = (await receive_type(first, "presence", timeout=3.0))["online"]
    assert await first.receive_nothing(timeout=1.0)  # 5 more beats: the live teammate stays listed
    await second.disconnect()
    assert (await receive_type(first, "presence"))["online"] == ["agent"]
    # A closed socket's beats stop with it: nothing lists it again.
    assert await first.receive_nothing(timeout=1.0)
    await first.disconnect()


async def test_a_beat_brings_back_a_teammate_taken_for_gone(teams, agent_user, settings):
    """A beat (the presence.here older processes also understand) from a socket this console had
    dropped (a stall, not a death) lists it again; a repeated beat changes nothing."""
    from channels.layers import get_channel_layer

    from chatbot import broadcast

    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "PRESENCE_HEARTBEAT_SECONDS": 5.0}
    first, _ = await agent_socket(agent_user)
    assert (await receive_type(first, "presence"))["online"] == ["agent"]
    beat = {"type": "presence.here", "team": teams[0].slug, "user": "back", "channel": "stalled-channel"}
    await get_channel_layer().group_send(broadcast.team_group(teams[0].slug), beat)
    assert (await receive_type(first, "presence"))["online"] == ["agent", "back"]
    await get_channel_layer().group_send(broadcast.team_group(teams[0].slug), beat)
    assert await first.receive_nothing(timeout=0.3)
    await first.disconnect()


async def test_an_unknown_group_event_is_dropped_and_the_socket_stays_up(teams, agent_user):
    """A newer process's event type (a rolling upgrade) must not end an older consumer."""
    from channels.layers import get_channel_layer

    from chatbot import broadcast

    agent, _ = await agent_socket(agent_user)
    await get_channel_layer().group_send(broadcast.team_group(teams[0].slug), {"type": "presence.from_the_future"})
    conversation = (await _routed_conversation("my invoice is wrong"))[1]
    assigned = await receive_type(agent, "conversation.assigned")
    assert assigned["conversation"]["id"] == conversation
    await agent.disconnect()


async def test_a_teammate_on_an_older_process_that_never_beats_is_not_dropped(teams, agent_user, settings):
    """During a rolling upgrade, an agent on an older process joins without a beat interval: it
    stays listed until it says goodbye, however many beats go by."""
    from channels.layers import get_channel_layer

    from chatbot import broadcast

    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "PRESENCE_HEARTBEAT_SECONDS": 0.1}
    first, _ = await agent_socket(agent_user)
    group = broadcast.team_group(teams[0].slug)
    old = {"type": "presence.join", "team": teams[0].slug, "user": "old", "channel": "older-process-channel"}
    await get_channel_layer().group_send(group, old)
    seen = []
    while seen != ["agent", "old"]:
        seen = (await receive_type(first, "presence"))["online"]
    assert await first.receive_nothing(timeout=0.6)  # 6 beats, 2x the expiry of a beating socket
    await get_channel_layer().group_send(group, {**old, "type": "presence.leave"})
    assert (await receive_type(first, "presence"))["online"] == ["agent"]
    await first.disconnect()
