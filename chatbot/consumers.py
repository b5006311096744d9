"""The live chat's websockets: customers on ``/ws/chat/``, agents on ``/ws/agent/`` (chatbot.agent_consumer).

Frames are JSON objects with a ``type``. Consumers parse, call one service or selector on a
chat database thread (``db_run``/``db_call``, see chatbot.ws_base), and render; bad input gets
an ``error`` frame and the connection stays up, except for gross abuse (see FrameGuard).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from chatbot import selectors, services, services_bulk
from chatbot.agent_consumer import AgentConsumer  # noqa: F401 - its home before; imports of it keep working
from chatbot.errors import NoModelError
from chatbot.models import Conversation, Message
from chatbot.ws_base import CLOSE_FORBIDDEN, JsonFrameConsumer, batcher, db_call, db_run, posts_store
from routing.models import ModelVersion

logger = logging.getLogger(__name__)
# First messages routed together at most: one inference over this many texts (memory grows with it).
ROUTE_BATCH_MAX = 32
PREDICT_CHUNK = 4


def router_get():
    """This process's router, imported late: loading it pulls in onnxruntime."""
    from routing.router import get_router

    return get_router()


def _shadow_score_all(messages: list[Message]) -> None:
    from routing.shadow import shadow_score  # late: it loads onnxruntime

    if not ModelVersion.objects.filter(state=ModelVersion.State.SHADOW).exists():
        return  # one query per batch instead of one per message
    for message in messages:
        shadow_score(conversation_id=message.conversation_id, message_id=message.pk, text=message.text)


def _history(conversation: Conversation) -> dict[str, Any]:
    conversation.refresh_from_db()
    return {
        "messages": selectors.conversation_messages(conversation=conversation),
        "status": conversation.status,
        **selectors.conversation_team_payload(conversation=conversation),
    }


def _new_history(conversation: Conversation) -> dict[str, Any]:
    """``_history`` of a conversation this socket has just started: known without a query."""
    team = selectors.conversation_team_payload(conversation=conversation)
    return {"messages": [], "status": conversation.status, **team}


async def _predict(texts: list[str]) -> list:
    """The router's predictions, or None each (triage) when no model serves or the router fails.

    Asked PREDICT_CHUNK texts at a time, the chunks side by side: the int8 student costs about
    1.0 ms of CPU per text in batches of 1-4 but 2.0 ms in batches of 32 (measured on the demo
    artifact, 2 cores).
    """
    router = router_get()
    chunks = [texts[start : start + PREDICT_CHUNK] for start in range(0, len(texts), PREDICT_CHUNK)]
    try:
        answers = await asyncio.gather(*(router.apredict(chunk) for chunk in chunks))
        return [prediction for answer in answers for prediction in answer]
    except NoModelError:
        return [None] * len(texts)
    except Exception:
        # A broken model must not break the chat: the conversations wait in triage instead.
        logger.exception("chat: routing failed; sending the conversations to triage")
        return [None] * len(texts)


async def conversations_route(messages: list[Message]) -> list[None]:
    """``Batcher`` work: route the conversations of these first messages, one inference and one
    transaction for all; then a shadow candidate scores the same texts (never raises)."""
    predictions = await _predict([message.text for message in messages])
    requests = [
        services_bulk.RouteRequest(conversation_id=message.conversation_id, prediction=prediction, message=message)
        for message, prediction in zip(messages, predictions)
    ]
    _, broadcasts = await db_call(services_bulk.conversations_route, requests=requests)
    await services.broadcasts_send(broadcasts)
    # Off the routing path: the next batch need not wait for the shadow's check and scoring.
    task = asyncio.create_task(_shadow_score(messages))
    _shadow_tasks.add(task)
    task.add_done_callback(_shadow_tasks.discard)
    return [None] * len(messages)


_shadow_tasks: set[asyncio.Task] = set()


async def _shadow_score(messages: list[Message]) -> None:
    try:
        await db_call(_shadow_score_all, messages)
    except Exception:
        logger.exception("chat: shadow scoring failed")


class CustomerChatConsumer(JsonFrameConsumer):
    """One customer socket bound to one conversation: started here, or resumed by its token."""

    frame_types = frozenset({"message", "typing"})
    write_types = frozenset({"message"})

    async def connect(self):
        self.conversation = None
        self.team_changed = False
        self.routing: asyncio.Task | None = None
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token is None:
            conversation = await db_run(services.conversation_start)
        else:
            conversation = await db_run(selectors.conversation_get_by_token, token=token)
            if conversation is None:
                detail = "Unknown conversation token; connect without one to start a new conversation."
                await self.refuse(CLOSE_FORBIDDEN, "bad_token", detail)
                return
        self.conversation = conversation
        self.group = services.conversation_group(conversation.pk)
        async with services.layer_slot():
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if token is None:
            await self.send_json({"type": "conversation", "id": conversation.pk, "token": conversation.token})
            history = _new_history(conversation)
        else:
            history = await db_run(_history, conversation)
        await self.send_json({"type": "history", **history})

    async def disconnect(self, code):
        if self.conversation is not None:
            async with services.layer_slot():
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def frame_message(self, frame: dict[str, Any]) -> None:
        request = services_bulk.PostRequest(
            conversation_id=self.conversation.pk, text=frame.get("text"), client_id=frame.get("client_id")
        )
        result, broadcasts = await batcher(posts_store).submit(request)
        # Stored and committed: ack first, then tell the other sockets (in this socket's order).
        await self.send_json({"type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk})
        await services.broadcasts_send(broadcasts, origin=self.channel_name)
        # Checked after every message, not only the first: a resend after a crash between
        # storing and routing still gets the conversation into an inbox.
        # Routing runs beside this socket's next messages: they are stored and acked meanwhile,
        # and the inbox gets them with the conversation (routing reads the history under the
        # conversation's row lock) or after it.
        if not result.routed and self.routing is None:
            self.routing = asyncio.create_task(self._route(result.message))

    async def _route(self, message: Message) -> None:
        try:
            await batcher(conversations_route, max_batch=ROUTE_BATCH_MAX).submit(message)
        except Exception:
            # The next message tries again; meanwhile the conversation waits unrouted.
            logger.exception("chat: routing conversation %s failed", message.conversation_id)
        finally:
            self.routing = None

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        event = {
            "type": "chat.typing", "sender": "customer", "conversation_id": self.conversation.pk,
            "origin": self.channel_name,
        }
        await services.broadcasts_send([(self.group, event)])
        if self.conversation.routed_at is None or self.team_changed:
            self.conversation = await db_run(selectors.conversation_get_by_token, token=self.conversation.token)
            self.team_changed = False
        if self.conversation.routed_at is not None:
            await services.broadcasts_send([(services.inbox_group(self.conversation), event)])

    async def chat_message(self, event):
        # The socket that sent a message has its ack; the conversation's other sockets need it.
        if event.get("origin") != self.channel_name:
            await self.send_json({"type": "message", **event["message"]})

    async def chat_routed(self, event):
        # Read again only when needed (a typing notice goes to the inbox): hundreds of sockets
        # routed at once would otherwise each cost a query.
        self.team_changed = True
        await self.send_json({"type": "routed", **{key: event[key] for key in ("team", "team_name", "triage")}})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({"type": "typing", "sender": event["sender"]})
