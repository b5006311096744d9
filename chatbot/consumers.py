"""The live chat's websockets: customers on ``/ws/chat/``, agents on ``/ws/agent/``.

Frames are JSON objects with a ``type``. Consumers parse, call one service or selector on a
chat database thread (``db_run``/``db_call``, see chatbot.ws_base), and render; bad input gets
an ``error`` frame and the connection stays up, except for gross abuse (see FrameGuard).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from chatbot import broadcast, selectors, services
from chatbot.live_routing import ROUTE_BATCH_MAX, conversations_route
from chatbot.conf import setting
from chatbot.models import Conversation, Message
from chatbot.handshakes import handshake_allowed
from chatbot.ws_base import CLOSE_ABUSE, CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonFrameConsumer, batcher, db_run, posts_store

logger = logging.getLogger(__name__)
# A teammate not heard from for this many heartbeats is taken for gone (see AgentConsumer).
PRESENCE_EXPIRY_BEATS = 3


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
        conversation_id = self.conversation.pk if self.conversation is not None else None
        request = services.PostRequest(
            conversation_id=conversation_id, text=frame.get("text"), client_id=frame.get("client_id")
        )
        result, broadcasts = await batcher(posts_store).submit(request)
        if result.started:
            await self._bind(result.conversation)
            conversation = result.conversation
            await self.send_json({"type": "conversation", "id": conversation.pk, "token": conversation.token})
        # Stored and committed: ack first, then tell the other sockets (in this socket's order).
        await self.send_json({"type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk})
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
            "type": "chat.typing", "sender": "customer", "conversation_id": self.conversation.pk,
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
        await self.send_json({"type": "routed", **{key: event.get(key) for key in ("team", "team_name", "triage", "reason")}})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({"type": "typing", "sender": event["sender"]})


def _agent_teams(user) -> list[tuple[str, str]]:
    return [(team.slug, team.name) for team in selectors.agent_teams(user=user)]


def _agent_act(user, conversation_id: object, action):
    """Run ``action(conversation)`` on a conversation the agent may act on (else NotFoundError)."""
    return action(selectors.conversation_get_for_agent(user=user, conversation_id=conversation_id))


def _history_payload(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": selectors.conversation_summary(conversation=conversation),
        "messages": selectors.conversation_messages(conversation=conversation),
    }


def _reassign(user, team_slug: object):
    from finetune.services import team_get_by_slug

    return lambda c: services.conversation_reassign(conversation=c, team=team_get_by_slug(slug=team_slug), user=user)


class AgentConsumer(JsonFrameConsumer):
    """An agent's console: every inbox they work (their teams, or all for staff) plus triage.

    Presence is kept per consumer from group events, so it is right across processes: a new
    socket announces itself to each team group, every socket already there answers it
    directly, and a closing socket says goodbye. A socket whose process dies cannot say goodbye:
    every socket also beats every PRESENCE_HEARTBEAT_SECONDS (0 = off), sending its teams the
    same ``presence.here`` it answers a join with, and drops teammates it has not heard from
    for PRESENCE_EXPIRY_BEATS of *their* beats (each event says its sender's interval, so
    processes configured differently agree). A socket that says no interval (off, or an older
    process during a rolling upgrade) is never expired, only said goodbye to. (A beat of its own
    event type would end older processes' consumers: they raised on unknown events.)
    """

    frame_types = frozenset({"open", "reply", "reassign", "close", "typing"})
    write_types = frozenset({"reply", "reassign", "close"})
    heartbeat: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:  # however the consumer ends (a handler's exception too), its beats stop with it
            if self.heartbeat is not None:
                self.heartbeat.cancel()

    async def connect(self):
        self.user = self.scope.get("user")
        self.teams: list[tuple[str, str]] = []
        if self.user is None or not self.user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", "Log in at /agent/login/ first.")
            return
        if not await db_run(selectors.agent_can_use_console, user=self.user):
            await self.refuse(CLOSE_FORBIDDEN, "forbidden", "Only staff and team members can use the agent console.")
            return
        self.teams = await db_run(_agent_teams, self.user)
        self.online: dict[str, dict[str, str]] = {slug: {} for slug, _ in self.teams}
        # channel -> (when it last announced itself (monotonic), its beat interval or 0)
        self.heard: dict[str, tuple[float, float]] = {}
        self.beat_seconds = max(0.0, float(setting("PRESENCE_HEARTBEAT_SECONDS")))
        self.inbox_groups = [broadcast.team_group(slug) for slug, _ in self.teams] + [broadcast.TRIAGE_GROUP, broadcast.WAITING_GROUP]
        for group in self.inbox_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({
            "type": "inbox",
            "teams": [{"slug": slug, "name": name} for slug, name in self.teams],
            "conversations": await db_run(selectors.agent_inbox, user=self.user),
        })
        await self._presence_announce("presence.join")
        if self.beat_seconds > 0:
            self.heartbeat = asyncio.create_task(self._heartbeat())

    async def disconnect(self, code):
        if not self.teams and not getattr(self, "inbox_groups", None):
            return
        if self.heartbeat is not None:
            self.heartbeat.cancel()  # before the goodbye: a later beat would list it again
        await self._presence_announce("presence.leave")
        for group in self.inbox_groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _presence_announce(self, kind: str) -> None:
        for slug, _ in self.teams:
            event = {"type": kind, "team": slug, **self._presence_self()}
            await self.channel_layer.group_send(broadcast.team_group(slug), event)

    def _presence_self(self) -> dict[str, Any]:
        return {"user": self.user.get_username(), "channel": self.channel_name, "beat_seconds": self.beat_seconds}

    async def frame_open(self, frame):
        history = await db_run(_agent_act, self.user, frame.get("conversation_id"), _history_payload)
        await self.send_json({"type": "history", **history})

    async def frame_reply(self, frame):
        conversation_id = await db_run(_agent_act, self.user, frame.get("conversation_id"), lambda c: c.pk)
        request = services.PostRequest(
            conversation_id=conversation_id, text=frame.get("text"), client_id=frame.get("client_id"),
            sender=Message.Sender.AGENT, author=self.user,
        )
        result, broadcasts = await batcher(posts_store).submit(request)
        await self.send_json({
            "type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk,
            "conversation_id": result.message.conversation_id,
        })
        await broadcast.broadcasts_send(broadcasts)

    async def frame_reassign(self, frame):
        await db_run(_agent_act, self.user, frame.get("conversation_id"), _reassign(self.user, frame.get("team")))

    async def frame_close(self, frame):
        close = lambda c: services.conversation_close(conversation=c, user=self.user)  # noqa: E731
        await db_run(_agent_act, self.user, frame.get("conversation_id"), close)

    async def frame_typing(self, frame):
        groups = await db_run(
            _agent_act, self.user, frame.get("conversation_id"),
            lambda c: [broadcast.conversation_group(c.pk), broadcast.inbox_group(c)],
        )
        event = {
            "type": "chat.typing", "sender": "agent", "author": self.user.get_username(),
            "conversation_id": frame.get("conversation_id"), "origin": self.channel_name,
        }
        for group in groups:
            await self.channel_layer.group_send(group, event)

    async def chat_message(self, event):
        await self.send_json({"type": "message", **event["message"]})

    async def conversation_assigned(self, event):
        await self.send_json({"type": "conversation.assigned", **{key: event[key] for key in ("conversation", "messages")}})

    async def conversation_waiting(self, event):
        await self.send_json({"type": "conversation.waiting", **{key: event[key] for key in ("conversation", "messages")}})

    async def conversation_updated(self, event):
        await self.send_json({"type": "conversation.updated", "conversation": event["conversation"]})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({
                "type": "typing", "sender": event["sender"], "author": event.get("author"),
                "conversation_id": event["conversation_id"],
            })

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.beat_seconds)
            try:
                await self._presence_announce("presence.here")
                await self._presence_expire(time.monotonic())
            except Exception:  # a dropped layer connection: the next beat tries again
                logger.exception("chat: presence heartbeat of %s failed", self.channel_name)

    def _silent(self, channel: str, now: float) -> bool:
        at, interval = self.heard.get(channel, (now, 0.0))
        return channel != self.channel_name and interval > 0 and now - at > PRESENCE_EXPIRY_BEATS * interval

    async def _presence_expire(self, now: float) -> None:
        for team, members in self.online.items():
            gone = [c for c in members if self._silent(c, now)]
            for channel in gone:
                del members[channel]
            if gone:
                await self._presence_changed(team)
        listed = {channel for members in self.online.values() for channel in members}
        self.heard = {channel: heard for channel, heard in self.heard.items() if channel in listed}

    def _heard(self, event) -> bool:
        """Note that ``event``'s socket is online in its team; True if the list changed."""
        team, channel = event["team"], event["channel"]
        self.heard[channel] = (time.monotonic(), float(event.get("beat_seconds") or 0.0))
        changed = self.online[team].get(channel) != event["user"]
        self.online[team][channel] = event["user"]
        return changed

    async def _presence_changed(self, team: str) -> None:
        online = sorted(set(self.online[team].values()))
        await self.send_json({"type": "presence", "team": team, "online": online})

    async def presence_join(self, event):
        team = event["team"]
        if team not in self.online:
            return
        self._heard(event)
        if event["channel"] != self.channel_name:
            reply = {"type": "presence.here", "team": team, **self._presence_self()}
            await self.channel_layer.send(event["channel"], reply)
        await self._presence_changed(team)

    async def presence_here(self, event):
        # An answer to this socket's join, or a teammate's beat: silent unless the list changed
        # (a new teammate, or one this socket had dropped and hears again).
        if event["team"] in self.online and self._heard(event):
            await self._presence_changed(event["team"])

    async def presence_leave(self, event):
        if event["team"] in self.online and self.online[event["team"]].pop(event["channel"], None):
            await self._presence_changed(event["team"])
        if not any(event["channel"] in members for members in self.online.values()):
            self.heard.pop(event["channel"], None)
