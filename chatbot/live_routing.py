"""The chat's routing batch: conversations with new customer messages, scored and placed together.

Each socket submits its conversation after a customer message is stored; conversations waiting
together share one database read, one or two router calls and one transaction
(chatbot.conversation_routing). The router runs on its own threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from chatbot import broadcast, conversation_routing
from chatbot.chat_db import db_call
from chatbot.core.errors import NoModelError
from chatbot.events import conversations_routed
from routing.conversation import carries_intent, fragments_answer, fragments_text, turns_answer, turns_join

logger = logging.getLogger(__name__)
# Conversations routed together at most: one inference over this many texts (memory grows with it).
ROUTE_BATCH_MAX = 32


def router_get():
    """This process's router, imported late: loading it pulls in onnxruntime."""
    from routing.router import get_router

    return get_router()


async def _predict(texts: list[str]) -> list:
    """The router's predictions, or None each (triage) when no model serves or the router fails.

    One call for the whole batch: the model scores it sorted by length (finetune.ml.onnx_batches),
    cheaper per text than the same texts one by one.
    """
    if not texts:
        return []
    try:
        return await router_get().apredict(texts)
    except NoModelError:
        return [None] * len(texts)
    except Exception:
        # A broken model must not break the chat: the conversations go to triage instead.
        logger.exception("chat: routing failed; sending the conversations to triage")
        return [None] * len(texts)


async def _decisions(inputs: list[conversation_routing.RoutingInput]) -> list[conversation_routing.RouteRequest]:
    """Score every new message alone, then apply routing.conversation's rule per conversation
    (several intent turns: one more score, of their joined text; still unrouted: one more, of the
    newest turns), all conversations in one batch."""
    flat = [(item, pk, text) for item in inputs for pk, text in item.unscored]
    alone = await _predict([text for _, _, text in flat])
    new: dict[int, list[tuple[int, str, object]]] = {item.conversation_id: [] for item in inputs}
    for (item, pk, text), prediction in zip(flat, alone):
        new[item.conversation_id].append((pk, text, prediction))
    final, joined = {}, {}
    for item in inputs:
        scored = [(text, prediction) for _, text, prediction in new[item.conversation_id]]
        if any(prediction is None for _, prediction in scored):  # no model (or a broken one): triage
            final[item.conversation_id] = None
            continue
        final[item.conversation_id], text = turns_answer(item.earlier_turns, scored)
        if text is not None:
            joined[item.conversation_id] = text
    final.update(zip(joined, await _predict(list(joined.values()))))
    flags = {
        pk: {message_id: carries_intent(p) for message_id, _, p in rows if p is not None} for pk, rows in new.items()
    }
    await _fragments_pass(inputs, final, flags)
    return [conversation_routing.RouteRequest(conversation_id=pk, prediction=final[pk], scored=flags[pk]) for pk in new]


async def _fragments_pass(inputs: list[conversation_routing.RoutingInput], final: dict, flags: dict) -> None:
    """Conversations their intent turns leave unrouted: the newest turns joined, in one more batch,
    replace the answer where that text routes (routing.conversation.fragments_text). ``flags``:
    per conversation, whether each newly scored message carries an intent."""
    fragments = {}
    for item in inputs:
        scored_now = flags[item.conversation_id]
        newest = [(text, scored_now.get(pk, carries)) for pk, text, carries in item.last_turns]
        text = fragments_text(final[item.conversation_id], newest)
        if text is not None:
            fragments[item.conversation_id] = text
    for pk, candidate in zip(fragments, await _predict(list(fragments.values()))):
        final[pk] = fragments_answer(final[pk], candidate)


async def conversations_route(conversation_ids: list[int]) -> list[None]:
    """``Batcher`` work: read, score and place these conversations; then tell the learning loop."""
    inputs, _ = await db_call(
        conversation_routing.routing_inputs, conversation_ids=list(dict.fromkeys(conversation_ids))
    )
    if inputs:
        requests = await _decisions(inputs)
        _, broadcasts = await db_call(conversation_routing.conversations_route, requests=requests)
        await broadcast.broadcasts_send(broadcasts)
        _learning_loop_tell([item.conversation_id for item in inputs])
    return [None] * len(conversation_ids)


async def conversation_reevaluate(conversation_id: int) -> None:
    """An agent marked a turn "not a request": place the conversation on the turns still carrying
    an intent, by the usual rule (conversation_routing.conversations_route); back to waiting if none."""
    turns, _ = await db_call(conversation_routing.reevaluation_turns, conversation_id=conversation_id)
    if turns is None:
        return
    if turns:
        [prediction] = await _predict([turns_join(turns)])
        request = conversation_routing.RouteRequest(conversation_id=conversation_id, prediction=prediction)
        _, broadcasts = await db_call(conversation_routing.conversations_route, requests=[request])
    else:
        _, broadcasts = await db_call(conversation_routing.conversation_unroute, conversation_id=conversation_id)
    await broadcast.broadcasts_send(broadcasts)
    _learning_loop_tell([conversation_id])  # its text changed: the shadow scores it again


def _learning_loop_tell(conversation_ids: list[int]) -> None:
    if conversations_routed.has_listeners():
        # Off the routing path: the next batch need not wait for the learning loop's work.
        task = asyncio.create_task(_after_routing(conversation_ids))
        _after_routing_tasks.add(task)
        task.add_done_callback(_after_routing_tasks.discard)


_after_routing_tasks: set[asyncio.Task] = set()


async def _after_routing(conversation_ids: list[int]) -> None:
    try:
        await db_call(conversations_routed.send, sender=None, conversation_ids=conversation_ids)
    except Exception:
        logger.exception("chat: a conversations_routed receiver (shadow scoring) failed")
