"""The customer's websocket, ``/ws/chat/`` (the agents' is in chatbot.agent_consumer).

Frames are JSON objects with a ``type``. Consumers parse, call one service or selector on a
chat database thread (``db_run``/``db_call``, see chatbot.chat_db), and render; bad input gets
an ``error`` frame and the connection stays up, except for gross abuse (see FrameGuard).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from chatbot import broadcast, selectors, services
from chatbot.chat_db import batcher, db_run, posts_store
from chatbot.core import metrics
from chatbot.frames import CLOSE_ABUSE, CLOSE_FORBIDDEN, JsonFrameConsumer
from chatbot.handshakes import handshake_allowed
from chatbot.live_routing import ROUTE_BATCH_MAX, conversations_route
from chatbot.models import Conversation

logger = logging.getLogger(__name__)


def _history(conversation: Conversation) -> dict[str, Any]:
    conversation.refresh_from_db()
    return {
        "messages": selectors.conversation_messages(conversation=conversation),
        "status": conversation.status,
        **selectors.conversation_team_payload(conversation=conversation),
    }


def _new_history() -> dict[str, Any]:
    """The history a socket without a conversation yet starts from (its first message starts one)."""
    return {"messages": [], "status": Conversation.Status.OPEN, "team": None, "team_name": None, "triage": True}


class CustomerChatConsumer(JsonFrameConsumer):
    """One customer socket bound to one conversation: started here, or resumed by its token."""

    frame_types = frozenset({"message", "typing"})
    write_types = frozenset({"message"})

    async def connect(self):
        self.conversation = None
        self.team_changed = False
        self.routing: asyncio.Task | None = None
        self.route_again = False
        if not await handshake_allowed(self.scope):
            detail = "Too many chat connections from your address; wait a minute and reconnect."
            await self.refuse(CLOSE_ABUSE, "too_many_connections", detail)
            return
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token is None:
            # Nothing is stored until the first message: that message starts the conversation.
            await self.accept()
            await self.send_json({"type": "history", **_new_history()})
            return
        conversation = await db_run(selectors.conversation_get_by_token, token=token)
        if conversation is None:
            detail = "Unknown conversation token; connect without one to start a new conversation."
            await self.refuse(CLOSE_FORBIDDEN, "bad_token", detail)
            return
        await self._bind(conversation)
        await self.accept()
        await self.send_json({"type": "history", **await db_run(_history, conversation)})

    async def _bind(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.group = broadcast.conversation_group(conversation.pk)
        async with broadcast.layer_slot():
            await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code):
        if self.conversation is not None:
            async with broadcast.layer_slot():
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def frame_message(self, frame: dict[str, Any]) -> None:
        started = time.perf_counter()
        conversation_id = self.conversation.pk if self.conversation is not None else None
        request = services.PostRequest(
            conversation_id=conversation_id,
            text=frame.get("text"),
            client_id=frame.get("client_id"),
            conversation_key=frame.get("conversation_key"),
        )
        result, broadcasts = await batcher(posts_store).submit(request)
        # Started by this message, or found by its conversation key (a resend whose answer was lost).
        if self.conversation is None:
            await self._bind(result.conversation)
            conversation = result.conversation
            await self.send_json({"type": "conversation", "id": conversation.pk, "token": conversation.token})
        # Stored and committed: ack first, then tell the other sockets (in this socket's order).
        await self.send_json({"type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk})
        metrics.ACK_SECONDS.labels("customer").observe(time.perf_counter() - started)
        await broadcast.broadcasts_send(broadcasts, origin=self.channel_name)
        # Every customer message may move a conversation the model still routes (no agent reply
        # yet). Routing runs beside this socket's next messages; one in flight at a time per
        # socket, and a message stored meanwhile is routed by the next run (it reads what is unscored).
        if result.created and not result.conversation.agent_replied_at:
            self.route_again = True
            if self.routing is None:
                self.routing = asyncio.create_task(self._route(result.conversation.pk))

    async def _route(self, conversation_id: int) -> None:
        try:
            while self.route_again:
                self.route_again = False
                await batcher(conversations_route, max_batch=ROUTE_BATCH_MAX).submit(conversation_id)
        except Exception:
            # The next message tries again (its run reads every message not yet scored).
            logger.exception("chat: routing conversation %s failed", conversation_id)
        finally:
            self.routing = None

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        if self.conversation is None:
            return  # nobody to tell before the first message starts the conversation
        event = {
            "type": "chat.typing",
            "sender": "customer",
            "conversation_id": self.conversation.pk,
            "origin": self.channel_name,
        }
        await broadcast.broadcasts_send([(self.group, event)])
        if self.conversation.routed_at is None or self.team_changed:
            self.conversation = await db_run(selectors.conversation_get_by_token, token=self.conversation.token)
            self.team_changed = False
        if self.conversation.routed_at is not None:
            await broadcast.broadcasts_send([(broadcast.inbox_group(self.conversation), event)])

    async def chat_message(self, event):
        # The socket that sent a message has its ack; the conversation's other sockets need it.
        if event.get("origin") != self.channel_name:
            await self.send_json({"type": "message", **event["message"]})

    async def chat_routed(self, event):
        # Read again only when needed (a typing notice goes to the inbox): hundreds of sockets
        # routed at once would otherwise each cost a query.
        self.team_changed = True
        await self.send_json(
            {"type": "routed", **{key: event.get(key) for key in ("team", "team_name", "triage", "reason")}}
        )

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({"type": "typing", "sender": event["sender"]})
