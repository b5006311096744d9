"""The chat's routing batch: conversations with new customer messages, scored and placed together.

Each socket submits its conversation after a customer message is stored; conversations waiting
together share one database read, one or two router calls and one transaction
(chatbot.conversation_routing). The router runs on its own threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from chatbot import broadcast, conversation_routing, selectors
from chatbot.errors import NoModelError
from chatbot.ws_base import db_call
from routing.conversation import carries_intent, turns_join
from routing.models import ModelVersion

logger = logging.getLogger(__name__)
# Conversations routed together at most: one inference over this many texts (memory grows with it).
ROUTE_BATCH_MAX = 32
PREDICT_CHUNK = 4


def router_get():
    """This process's router, imported late: loading it pulls in onnxruntime."""
    from routing.router import get_router

    return get_router()


async def _predict(texts: list[str]) -> list:
    """The router's predictions, or None each (triage) when no model serves or the router fails.

    Asked PREDICT_CHUNK texts at a time, the chunks side by side: the int8 student costs about
    1.0 ms of CPU per text in batches of 1-4 but 2.0 ms in batches of 32 (measured on the demo
    artifact, 2 cores).
    """
    if not texts:
        return []
    router = router_get()
    chunks = [texts[start : start + PREDICT_CHUNK] for start in range(0, len(texts), PREDICT_CHUNK)]
    try:
        answers = await asyncio.gather(*(router.apredict(chunk) for chunk in chunks))
        return [prediction for answer in answers for prediction in answer]
    except NoModelError:
        return [None] * len(texts)
    except Exception:
        # A broken model must not break the chat: the conversations go to triage instead.
        logger.exception("chat: routing failed; sending the conversations to triage")
        return [None] * len(texts)


async def _decisions(inputs: list[conversation_routing.RoutingInput]) -> list[conversation_routing.RouteRequest]:
    """Score every new message alone; a conversation with several intent turns is scored on their join."""
    flat = [(item, pk, text) for item in inputs for pk, text in item.unscored]
    alone = await _predict([text for _, _, text in flat])
    scored: dict[int, dict[int, bool]] = {item.conversation_id: {} for item in inputs}
    turns: dict[int, list[str]] = {item.conversation_id: list(item.earlier_turns) for item in inputs}
    last: dict[int, object] = {}
    failed: set[int] = set()  # no model (or a broken one): these conversations go to triage
    for (item, pk, text), prediction in zip(flat, alone):
        if prediction is None:
            failed.add(item.conversation_id)
            continue
        scored[item.conversation_id][pk] = carries_intent(prediction)
        if carries_intent(prediction):
            turns[item.conversation_id].append(text)
            last[item.conversation_id] = prediction
        else:
            last.setdefault(item.conversation_id, prediction)
    several = [pk for pk in scored if pk not in failed and len(turns[pk]) > 1]
    final = {**last, **dict(zip(several, await _predict([turns_join(turns[pk]) for pk in several])))}
    final.update({pk: None for pk in failed})
    return [
        conversation_routing.RouteRequest(conversation_id=pk, prediction=final.get(pk), scored=scored[pk])
        for pk in scored
    ]


async def conversations_route(conversation_ids: list[int]) -> list[None]:
    """``Batcher`` work: read, score and place these conversations; then the shadow scores them."""
    inputs, _ = await db_call(conversation_routing.routing_inputs, conversation_ids=list(dict.fromkeys(conversation_ids)))
    if inputs:
        requests = await _decisions(inputs)
        _, broadcasts = await db_call(conversation_routing.conversations_route, requests=requests)
        await broadcast.broadcasts_send(broadcasts)
        # Off the routing path: the next batch need not wait for the shadow's check and scoring.
        task = asyncio.create_task(_shadow_score([item.conversation_id for item in inputs]))
        _shadow_tasks.add(task)
        task.add_done_callback(_shadow_tasks.discard)
    return [None] * len(conversation_ids)


_shadow_tasks: set[asyncio.Task] = set()


def _shadow_score_all(conversation_ids: list[int]) -> None:
    from routing.shadow import shadow_score  # late: it loads onnxruntime

    if not ModelVersion.objects.filter(state=ModelVersion.State.SHADOW).exists():
        return  # one query per batch instead of one per conversation
    for conversation_id in conversation_ids:
        text, message_id = selectors.conversation_text(conversation_id=conversation_id)
        if text:
            shadow_score(conversation_id=conversation_id, message_id=message_id, text=text)


async def _shadow_score(conversation_ids: list[int]) -> None:
    try:
        await db_call(_shadow_score_all, conversation_ids)
    except Exception:
        logger.exception("chat: shadow scoring failed")

