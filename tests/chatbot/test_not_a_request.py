"""Agents mark a customer message "not a request": a no-intent ticket, and the conversation re-placed."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chatbot.core.errors import NotFoundError, SwitchboardError
from chatbot.models import Conversation, Message, RoutingEvent
from chatbot.not_a_request import message_mark_not_a_request
from finetune.models import Ticket
from tests.chatbot.conftest import agent_socket, customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def _say(socket, text: str, client_id: str) -> dict:
    await socket.send_json_to({"type": "message", "text": text, "client_id": client_id})
    return await receive_type(socket, "ack")


async def _mark(agent, conversation_id: int, message_id: int) -> dict:
    await agent.send_json_to({"type": "not_a_request", "conversation_id": conversation_id, "message_id": message_id})
    return await receive_type(agent, "marked")


@database_sync_to_async
def _state(pk: int) -> tuple[str | None, bool, str]:
    conversation = Conversation.objects.select_related("team").get(pk=pk)
    return (
        (conversation.team.slug if conversation.team else None),
        conversation.routed_at is None,
        conversation.routing_reason,
    )


@database_sync_to_async
def _tickets() -> list[tuple[str, bool, str | None, str]]:
    rows = Ticket.objects.order_by("id").select_related("team")
    return [(t.text, t.no_intent, t.team.slug if t.team else None, t.source) for t in rows]


@database_sync_to_async
def _carries(message_id: int) -> bool | None:
    return Message.objects.get(pk=message_id).carries_intent


@database_sync_to_async
def _user(name: str, *, team=None, triage: bool = False):
    user = get_user_model().objects.create_user(name, f"{name}@example.com", "pw-123456789")
    if team is not None:
        team.members.add(user)
    if triage:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="chatbot", codename="work_triage"))
    return user


def _conversation_with(*texts: str, carries: bool = True) -> tuple[Conversation, list[Message]]:
    conversation = Conversation.objects.create()
    messages = [
        Message.objects.create(
            conversation=conversation, sender=Message.Sender.CUSTOMER, text=text, carries_intent=carries
        )
        for text in texts
    ]
    return conversation, messages


def test_marking_records_one_no_intent_ticket_and_a_repeat_changes_nothing(staff_user):
    """The message stops carrying an intent and becomes a no-intent ticket (no team); marking it
    again returns the same ticket."""
    conversation, [message] = _conversation_with("thanks so much")
    first = message_mark_not_a_request(conversation=conversation, message_id=message.pk, user=staff_user)
    again = message_mark_not_a_request(conversation=conversation, message_id=message.pk, user=staff_user)
    assert first.created and first.reevaluate and not again.created and not again.reevaluate
    assert first.ticket_id == again.ticket_id
    ticket = Ticket.objects.get()
    assert (ticket.text, ticket.team, ticket.no_intent, ticket.source) == (
        "thanks so much",
        None,
        True,
        "not_a_request",
    )
    assert ticket.labelled_by == staff_user and ticket.meta == {
        "conversation_id": conversation.pk,
        "message_id": message.pk,
    }
    message.refresh_from_db()
    assert message.carries_intent is False


def test_only_a_customer_message_of_that_conversation_can_be_marked(staff_user):
    """An agent's message, another conversation's message and a non-integer id are refused; no ticket."""
    conversation, _ = _conversation_with("my invoice")
    _, [elsewhere] = _conversation_with("hello")
    reply = Message.objects.create(conversation=conversation, sender=Message.Sender.AGENT, text="On it")
    with pytest.raises(SwitchboardError) as refused:
        message_mark_not_a_request(conversation=conversation, message_id=reply.pk, user=staff_user)
    assert refused.value.code == "not_customer_message"
    with pytest.raises(NotFoundError):
        message_mark_not_a_request(conversation=conversation, message_id=elsewhere.pk, user=staff_user)
    with pytest.raises(SwitchboardError) as invalid:
        message_mark_not_a_request(conversation=conversation, message_id="7", user=staff_user)
    assert invalid.value.code == "invalid_message"
    assert not Ticket.objects.exists()


async def test_marking_the_turn_that_moved_it_routes_it_on_the_remaining_turns(teams, staff_user, keyword_router):
    """Invoice, then a line naming a password moved it to accounts; marking that line "not a request"
    re-routes it on the invoice turn: back to billing, the customer hears of it."""
    agent, _ = await agent_socket(staff_user)
    customer, _ = await customer_socket()
    await _say(customer, "question about my invoice", "1")
    assert (await receive_type(customer, "routed"))["team"] == "billing"
    ack = await _say(customer, "thanks, my password manager filled it in", "2")
    assert (await receive_type(customer, "routed"))["team"] == "accounts"
    conversation_id = (await receive_type(agent, "conversation.assigned"))["conversation"]["id"]
    marked = await _mark(agent, conversation_id, ack["message_id"])
    assert marked["created"] is True and marked["message_id"] == ack["message_id"]
    assert (await receive_type(customer, "routed"))["team"] == "billing"
    assert await _state(conversation_id) == ("billing", False, "routed")
    assert await _tickets() == [("thanks, my password manager filled it in", True, None, "not_a_request")]
    await customer.disconnect()
    await agent.disconnect()


async def test_when_no_turn_carries_an_intent_any_more_it_waits_again(teams, agent_user, keyword_router):
    """Routed to billing on small talk the model took for a request: once marked, the conversation
    leaves the inbox for the waiting list and the customer hears it is no longer placed."""
    agent, _ = await agent_socket(agent_user)
    customer, _ = await customer_socket()
    ack = await _say(customer, "cheers for the invoice", "1")
    conversation_id = (await receive_type(agent, "conversation.assigned"))["conversation"]["id"]
    await receive_type(customer, "routed")
    await _mark(agent, conversation_id, ack["message_id"])
    routed = await receive_type(customer, "routed")
    assert (routed["team"], routed["triage"], routed["reason"]) == (None, False, "no_intent")
    waiting = await receive_type(agent, "conversation.waiting")
    assert waiting["conversation"]["id"] == conversation_id and waiting["conversation"]["waiting"] is True
    assert await _state(conversation_id) == (None, True, "no_intent")
    assert (await _reasons(conversation_id))[0] == "no_intent"  # newest first
    await _say(customer, "I was charged twice on my refund", "2")
    assert (await receive_type(customer, "routed"))["team"] == "billing"
    await customer.disconnect()
    await agent.disconnect()


async def test_after_an_agent_replied_marking_only_records_the_ticket(teams, agent_user, keyword_router):
    """The model no longer places a conversation an agent answered: the mark teaches, nothing moves."""
    agent, _ = await agent_socket(agent_user)
    customer, _ = await customer_socket()
    ack = await _say(customer, "invoice, thanks", "1")
    conversation_id = (await receive_type(agent, "conversation.assigned"))["conversation"]["id"]
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "Hello!", "client_id": "r1"})
    await receive_type(agent, "ack")
    marked = await _mark(agent, conversation_id, ack["message_id"])
    again = await _mark(agent, conversation_id, ack["message_id"])
    assert marked["created"] is True and again["created"] is False and again["ticket_id"] == marked["ticket_id"]
    assert await _state(conversation_id) == ("billing", False, "routed")
    assert len(await _tickets()) == 1 and await _carries(ack["message_id"]) is False
    await customer.disconnect()
    await agent.disconnect()


async def test_a_non_member_is_refused_and_a_triage_worker_may_mark_a_waiting_conversation(teams, keyword_router):
    """A bugs agent without triage cannot mark a billing conversation's message (not found, nothing
    recorded); an agent of no team who works triage may mark a waiting one."""
    outsider, _ = await agent_socket(await _user("outsider", team=teams[2]))
    triager, _ = await agent_socket(await _user("triager", triage=True))
    customer, _ = await customer_socket()
    ack = await _say(customer, "refund my invoice", "1")
    await receive_type(customer, "routed")
    conversation_id = await _conversation_id(ack["message_id"])
    await outsider.send_json_to(
        {"type": "not_a_request", "conversation_id": conversation_id, "message_id": ack["message_id"]}
    )
    error = await receive_type(outsider, "error")
    assert error["code"] == "not_found"
    assert await _tickets() == [] and await _carries(ack["message_id"]) is True
    other, _ = await customer_socket()
    hello = await _say(other, "hi", "1")
    waiting_id = (await receive_type(triager, "conversation.waiting"))["conversation"]["id"]
    assert (await _mark(triager, waiting_id, hello["message_id"]))["created"] is True
    assert await _tickets() == [("hi", True, None, "not_a_request")]
    for socket in (outsider, triager, customer, other):
        await socket.disconnect()


@database_sync_to_async
def _reasons(conversation_id: int) -> list[str]:
    return list(RoutingEvent.objects.filter(conversation_id=conversation_id).values_list("reason", flat=True))


@database_sync_to_async
def _conversation_id(message_id: int) -> int:
    return Message.objects.get(pk=message_id).conversation_id


def test_a_routing_batch_in_flight_does_not_undo_a_mark(teams, staff_user):
    """A message marked while the router was scoring it stays "no intent" when that score is written."""
    from chatbot import conversation_routing
    from tests.chatbot.conftest import KeywordRouter

    conversation, [message] = _conversation_with("cheers for the invoice", carries=None)
    message_mark_not_a_request(conversation=conversation, message_id=message.pk, user=staff_user)
    prediction = KeywordRouter()._one("cheers for the invoice")
    request = conversation_routing.RouteRequest(conversation.pk, prediction, scored={message.pk: True})
    conversation_routing.conversations_route(requests=[request])
    message.refresh_from_db()
    assert message.carries_intent is False


def test_an_old_conversation_back_to_waiting_goes_to_triage_at_the_next_job(teams, staff_user):
    """The waiting limits count from the conversation's start: one routed long ago on small talk and
    then marked waits again only until the periodic job sends it to triage."""
    from datetime import timedelta

    from django.utils import timezone

    from chatbot import conversation_routing

    conversation, [message] = _conversation_with("cheers for the invoice")
    old = timezone.now() - timedelta(hours=1)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=old, routed_at=old, team=teams[0], routing_reason="routed"
    )
    message_mark_not_a_request(conversation=conversation, message_id=message.pk, user=staff_user)
    assert conversation_routing.conversation_unroute(conversation_id=conversation.pk) is True
    assert conversation_routing.conversation_unroute(conversation_id=conversation.pk) is False  # waiting already
    assert conversation_routing.conversations_triage_waiting(older_than_seconds=120) == 1
    conversation.refresh_from_db()
    assert (conversation.team, conversation.routing_reason) == (
        None,
        "no_intent",
    ) and conversation.routed_at is not None
