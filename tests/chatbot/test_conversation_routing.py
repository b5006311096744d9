"""Conversations are routed on the customer's text so far: waiting, routed, moved, held, timed out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chatbot import conversation_routing
from chatbot.models import Conversation, RoutingEvent
from tests.chatbot.conftest import FragmentRouter, agent_socket, customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _conversation(pk: int) -> Conversation:
    return Conversation.objects.select_related("team").get(pk=pk)


@database_sync_to_async
def _reasons(pk: int) -> list[tuple[str | None, str]]:
    rows = RoutingEvent.objects.filter(conversation_id=pk).order_by("id").select_related("team")
    return [(e.team.slug if e.team else None, e.reason) for e in rows]


async def _say(socket, text: str, client_id: str) -> dict:
    await socket.send_json_to({"type": "message", "text": text, "client_id": client_id})
    return await receive_type(socket, "ack")


async def test_a_greeting_waits_then_the_question_routes_it(teams, agent_user, keyword_router):
    """ "Hi" puts the conversation in the waiting list (no inbox); the question then routes it to its team."""
    staff_agent, _ = await agent_socket(await _staff())
    customer, _ = await customer_socket()
    await _say(customer, "Hi", "1")
    waiting = await receive_type(staff_agent, "conversation.waiting")
    assert waiting["conversation"]["waiting"] is True and waiting["conversation"]["team"] is None
    assert [m["text"] for m in waiting["messages"]] == ["Hi"]
    conversation_id = waiting["conversation"]["id"]
    assert (await _conversation(conversation_id)).routed_at is None
    await _say(customer, "I was charged twice on my invoice", "2")
    routed = await receive_type(customer, "routed")
    assert (routed["team"], routed["reason"], routed["triage"]) == ("billing", "routed", False)
    assigned = await receive_type(staff_agent, "conversation.assigned")
    assert assigned["conversation"]["team"] == "billing" and [m["text"] for m in assigned["messages"]][0] == "Hi"
    assert await _reasons(conversation_id) == [(None, "no_intent"), ("billing", "routed")]
    await customer.disconnect()
    await staff_agent.disconnect()


async def test_before_the_first_reply_a_confident_new_team_moves_it(teams, agent_user, keyword_router):
    """Billing, then a clearer password question: it moves to accounts, both inboxes hear of it."""
    billing_agent, _ = await agent_socket(agent_user)
    customer, _ = await customer_socket()
    await _say(customer, "question about my invoice", "1")
    started = await receive_type(customer, "routed")
    assert started["team"] == "billing"
    await receive_type(billing_agent, "conversation.assigned")
    await _say(customer, "actually I forgot my password", "2")
    moved = await receive_type(customer, "routed")
    assert moved["team"] == "accounts"
    updated = await receive_type(billing_agent, "conversation.updated")
    assert updated["conversation"]["team"] == "accounts"
    await customer.disconnect()
    await billing_agent.disconnect()


async def test_after_an_agent_replied_the_model_never_moves_it(teams, agent_user, keyword_router):
    """Once an agent has answered, a message pointing to another team leaves the conversation where it is."""
    agent, _ = await agent_socket(agent_user)
    customer, _ = await customer_socket()
    await _say(customer, "wrong invoice", "1")
    assigned = await receive_type(agent, "conversation.assigned")
    conversation_id = assigned["conversation"]["id"]
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "Looking", "client_id": "r"})
    await receive_type(agent, "ack")
    await _say(customer, "and my password does not work", "2")
    await receive_type(agent, "message")
    assert await customer.receive_nothing(timeout=0.5) or (await customer.receive_json_from())["type"] != "routed"
    conversation = await _conversation(conversation_id)
    assert conversation.team.slug == "billing" and conversation.agent_replied_at is not None
    assert await _reasons(conversation_id) == [("billing", "routed")]
    await customer.disconnect()
    await agent.disconnect()


async def test_greeting_question_thanks_stays_with_the_questions_team(teams, agent_user, keyword_router):
    """ "hey" + question + "thanks": routed once, to the question's team; the thanks moves nothing."""
    customer, _ = await customer_socket()
    await _say(customer, "hey", "1")
    await _say(customer, "crash when I open the app", "2")
    assert (await receive_type(customer, "routed"))["team"] == "bugs"
    await _say(customer, "thanks", "3")
    assert await customer.receive_nothing(timeout=0.5)
    conversation = await _conversation((await _conversation_ids())[0])
    assert conversation.team.slug == "bugs"
    await customer.disconnect()


async def test_a_question_split_over_two_messages_is_routed_on_both(teams, keyword_router):
    """The second turn alone is unsure; joined with the first the conversation has one clear team."""
    customer, _ = await customer_socket()
    await _say(customer, "there is a crash", "1")
    assert (await receive_type(customer, "routed"))["team"] == "bugs"
    await _say(customer, "right after the refund page", "2")
    moved = await receive_type(customer, "routed")
    assert moved["team"] == "billing"  # the keyword router lets the newest keyword win on joined text
    assert keyword_router.seen[-1] == "there is a crash\nright after the refund page"
    await customer.disconnect()


async def test_a_question_whose_halves_carry_no_intent_alone_is_routed_on_both(teams, fragment_router):
    """Each half scores as no intent on its own; the newest two turns read together route the conversation."""
    customer, _ = await customer_socket()
    first, second = FragmentRouter.HALVES
    await _say(customer, first, "1")
    await _say(customer, second, "2")
    routed = await receive_type(customer, "routed")
    assert (routed["team"], routed["reason"]) == ("billing", "routed")
    assert fragment_router.seen[-1] == f"{first}\n{second}"
    await customer.disconnect()


async def test_two_greetings_read_together_still_wait(teams, agent_user, keyword_router):
    """ "hello" then "ok": the two turns joined do not route either, so the conversation keeps waiting."""
    staff_agent, _ = await agent_socket(await _staff())
    customer, _ = await customer_socket()
    await _say(customer, "hello", "1")
    waiting = await receive_type(staff_agent, "conversation.waiting")
    await _say(customer, "ok", "2")
    for _ in range(200):  # the routing batch runs after the ack
        if keyword_router.seen[-1:] == ["hello\nok"]:  # read together once: no team there either
            break
        await asyncio.sleep(0.01)
    assert keyword_router.seen[-1] == "hello\nok"
    frames = []
    while not await staff_agent.receive_nothing(timeout=0.5):
        frames.append((await staff_agent.receive_json_from())["type"])
    assert frames == ["message"]  # "ok" shown in the waiting list; not routed, not moved out of it
    assert (await _conversation(waiting["conversation"]["id"])).routed_at is None
    await customer.disconnect()
    await staff_agent.disconnect()


async def test_still_no_intent_after_the_message_limit_goes_to_triage(teams, keyword_router, settings):
    """WAITING_MAX_MESSAGES greetings and acknowledgements: the conversation goes to triage."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "WAITING_MAX_MESSAGES": 3}
    customer, _ = await customer_socket()
    for number, text in enumerate(["hi", "hello", "ok"]):
        await _say(customer, text, str(number))
    routed = await receive_type(customer, "routed")
    assert (routed["triage"], routed["reason"], routed["team"]) == (True, "no_intent", None)
    await customer.disconnect()


async def test_the_periodic_job_sends_old_waiting_conversations_to_triage(teams, keyword_router):
    """A waiting conversation older than WAITING_MAX_SECONDS is triaged by the job; a fresh one keeps waiting."""
    customer, _ = await customer_socket()
    await _say(customer, "hello", "1")
    other, _ = await customer_socket()
    await _say(other, "hi", "1")
    old, fresh = await _conversation_ids()
    await _wait_until_waiting([old, fresh])
    await database_sync_to_async(Conversation.objects.filter(pk=old).update)(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    triaged = await database_sync_to_async(conversation_routing.conversations_triage_waiting)(older_than_seconds=120)
    assert triaged == 1
    assert (await receive_type(customer, "routed"))["triage"] is True
    assert (await _conversation(old)).routed_at is not None and (await _conversation(fresh)).routed_at is None
    await customer.disconnect()
    await other.disconnect()


@database_sync_to_async
def _conversation_ids() -> list[int]:
    return list(Conversation.objects.order_by("pk").values_list("pk", flat=True))


async def _wait_until_waiting(ids: list[int]) -> None:
    import asyncio

    for _ in range(100):
        reasons = await database_sync_to_async(
            lambda: list(Conversation.objects.filter(pk__in=ids).values_list("routing_reason", flat=True))
        )()
        if all(reasons):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"conversations {ids} never became waiting")


@database_sync_to_async
def _staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("lead", "lead@example.com", "lead-pass-123", is_staff=True)


def test_a_routing_batch_saves_every_conversations_own_values(teams):
    """One UPDATE for the batch: each conversation gets its own team, confidence, reason, language
    and times, NULLs included (PostgreSQL types them by cast), the others' untouched."""
    from routing.loaded_model import Prediction

    def prediction(team, confidence, reason, language):
        routed = reason in ("routed", "low_confidence")
        return Prediction(
            team=team if routed else None,
            team_name=None,
            confidence=confidence,
            triage=reason != "routed" and reason != "no_intent",
            reason=reason,
            language=language,
            scores={},
            model_version="",
        )

    routed, waiting, unsure, untouched = (Conversation.objects.create() for _ in range(4))
    before = timezone.now()
    conversation_routing.conversations_route(
        requests=[
            conversation_routing.RouteRequest(routed.pk, prediction("billing", 0.91, "routed", "en")),
            conversation_routing.RouteRequest(waiting.pk, prediction(None, 0.97, "no_intent", "de")),
            conversation_routing.RouteRequest(unsure.pk, prediction("bugs", 0.31, "low_confidence", None)),
        ]
    )
    rows = Conversation.objects.in_bulk([routed.pk, waiting.pk, unsure.pk, untouched.pk])
    got = {
        pk: (
            c.team.slug if c.team else None,
            c.predicted_team.slug if c.predicted_team else None,
            c.confidence,
            c.routing_reason,
            c.language,
            c.routed_at is not None,
        )
        for pk, c in rows.items()
    }
    assert got == {
        routed.pk: ("billing", "billing", 0.91, "routed", "en", True),
        waiting.pk: (None, None, None, "no_intent", "de", False),
        unsure.pk: (None, "bugs", 0.31, "low_confidence", "", True),
        untouched.pk: (None, None, None, "", "", False),
    }
    assert rows[routed.pk].routed_at >= before and rows[routed.pk].updated_at >= before
    assert rows[untouched.pk].updated_at < before
