"""The live chat's websockets: customers on ``/ws/chat/``, agents on ``/ws/agent/``.

Frames are JSON objects with a ``type``. Consumers parse, call one service or selector through
a small ``database_sync_to_async`` helper, and render; bad input gets an ``error`` frame and
the connection stays up, except for gross abuse (see FrameGuard).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chatbot import selectors, services
from chatbot.conf import setting
from chatbot.errors import NoModelError, SwitchboardError
from chatbot.models import Conversation

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_ABUSE = 4429
WINDOW_SECONDS = 10.0
# A frame this many times over the size limit is not a mistake: close at once.
GROSS_SIZE_FACTOR = 8
# Typing notices closer together than this are dropped: they only keep an indicator lit.
TYPING_INTERVAL_SECONDS = 1.0


def router_get():
    """This process's router, imported late: loading it pulls in onnxruntime."""
    from routing.router import get_router

    return get_router()


async def _shadow_score(conversation_id: int, message_id: int, text: str) -> None:
    from routing.shadow import ashadow_score  # late: it loads onnxruntime

    await ashadow_score(conversation_id=conversation_id, message_id=message_id, text=text)


class FrameGuard:
    """Per-connection limits: frame size, and writes per sliding 10 seconds.

    Refused frames count too: a client that keeps sending after as many refusals as the
    write limit within the window is abusive and gets closed.
    """

    def __init__(self, *, max_bytes: int, writes_per_window: int, clock=time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.writes_per_window = writes_per_window
        self.clock = clock
        self._writes: deque[float] = deque()
        self._refusals: deque[float] = deque()
        self.gross = False
        self._typing_at = float("-inf")

    def _trim(self, stamps: deque[float], now: float) -> None:
        while stamps and now - stamps[0] >= WINDOW_SECONDS:
            stamps.popleft()

    def _refuse(self, message: str, code: str) -> SwitchboardError:
        now = self.clock()
        self._refusals.append(now)
        self._trim(self._refusals, now)
        if len(self._refusals) >= self.writes_per_window:
            self.gross = True
        return SwitchboardError(message, code=code)

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            self.gross = self.gross or size > GROSS_SIZE_FACTOR * self.max_bytes
            raise self._refuse(f"Frame is {size} bytes; the limit is {self.max_bytes}.", "frame_too_large")

    def typing_due(self) -> bool:
        now = self.clock()
        if now - self._typing_at < TYPING_INTERVAL_SECONDS:
            return False
        self._typing_at = now
        return True

    def check_write(self) -> None:
        now = self.clock()
        self._trim(self._writes, now)
        if len(self._writes) >= self.writes_per_window:
            raise self._refuse(
                f"More than {self.writes_per_window} messages in {WINDOW_SECONDS:.0f} s; wait and resend "
                "with the same client_id.",
                "rate_limited",
            )
        self._writes.append(now)


def frame_decode(raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise SwitchboardError("Binary frames are not accepted; send JSON text.", code="bad_frame")
    try:
        frame = json.loads(raw)
    except ValueError:
        raise SwitchboardError("Frame is not valid JSON.", code="bad_frame") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise SwitchboardError('A frame must be a JSON object with a string "type".', code="bad_frame")
    return frame


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """Size and rate limits, JSON decoding and dispatch of frame types to ``frame_<type>`` methods."""

    frame_types: frozenset[str] = frozenset()
    write_types: frozenset[str] = frozenset()

    async def websocket_connect(self, message):
        self.guard = FrameGuard(
            max_bytes=int(setting("CHAT_MAX_FRAME_BYTES")),
            writes_per_window=int(setting("CHAT_MESSAGES_PER_10S")),
        )
        await super().websocket_connect(message)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            self.guard.check_size(len(text_data.encode()) if text_data is not None else len(bytes_data or b""))
            frame = frame_decode(text_data)
            kind = frame["type"]
            if kind not in self.frame_types:
                known = ", ".join(sorted(self.frame_types))
                raise SwitchboardError(f"Unknown frame type '{kind[:40]}'; expected one of: {known}.", code="bad_frame")
            if kind in self.write_types:
                self.guard.check_write()
            if kind == "typing" and not self.guard.typing_due():
                return
            await getattr(self, f"frame_{kind}")(frame)
        except SwitchboardError as exc:
            await self.send_error(exc.code, exc.message)
            if self.guard.gross:
                await self.close(code=CLOSE_ABUSE)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, code: str, detail: str) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail})

    async def refuse(self, code: int, error: str, detail: str) -> None:
        """Accept only to explain: browsers never see the reason of a refused handshake."""
        await self.accept()
        await self.send_error(error, detail)
        await self.close(code=code)


@database_sync_to_async
def _conversation_by_token(token: str | None) -> Conversation | None:
    return selectors.conversation_get_by_token(token=token)


@database_sync_to_async
def _conversation_start() -> Conversation:
    return services.conversation_start()


@database_sync_to_async
def _history(conversation: Conversation) -> dict[str, Any]:
    conversation.refresh_from_db()
    return {
        "messages": selectors.conversation_messages(conversation=conversation),
        "status": conversation.status,
        **selectors.conversation_team_payload(conversation=conversation),
    }


@database_sync_to_async
def _post_customer(conversation: Conversation, text: object, client_id: object) -> services.PostResult:
    return services.message_post_customer(conversation=conversation, text=text, client_id=client_id)


@database_sync_to_async
def _route(conversation: Conversation, prediction, message) -> Conversation:
    return services.conversation_route(conversation=conversation, prediction=prediction, message=message)


async def _predict(text: str):
    """The router's prediction, or None (triage) when no model serves or the router fails."""
    try:
        return (await router_get().apredict([text]))[0]
    except NoModelError:
        return None
    except Exception:
        # A broken model must not break the chat: the conversation waits in triage instead.
        logger.exception("chat: routing failed; sending the conversation to triage")
        return None


class CustomerChatConsumer(JsonFrameConsumer):
    """One customer socket bound to one conversation: started here, or resumed by its token."""

    frame_types = frozenset({"message", "typing"})
    write_types = frozenset({"message"})

    async def connect(self):
        self.conversation = None
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token is None:
            conversation = await _conversation_start()
        else:
            conversation = await _conversation_by_token(token)
            if conversation is None:
                detail = "Unknown conversation token; connect without one to start a new conversation."
                await self.refuse(CLOSE_FORBIDDEN, "bad_token", detail)
                return
        self.conversation = conversation
        self.group = services.conversation_group(conversation.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if token is None:
            await self.send_json({"type": "conversation", "id": conversation.pk, "token": conversation.token})
        await self.send_json({"type": "history", **await _history(conversation)})

    async def disconnect(self, code):
        if self.conversation is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def frame_message(self, frame: dict[str, Any]) -> None:
        result = await _post_customer(self.conversation, frame.get("text"), frame.get("client_id"))
        await self.send_json({"type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk})
        # Checked after every message, not only the first: a resend after a crash between
        # storing and routing still gets the conversation into an inbox.
        if not result.routed:
            prediction = await _predict(result.message.text)
            await _route(self.conversation, prediction, result.message)
            # A shadow candidate scores the same text beside the active model; never raises.
            await _shadow_score(self.conversation.pk, result.message.pk, result.message.text)

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        event = {
            "type": "chat.typing", "sender": "customer", "conversation_id": self.conversation.pk,
            "origin": self.channel_name,
        }
        await self.channel_layer.group_send(self.group, event)
        if self.conversation.routed_at is None:
            self.conversation = await _conversation_by_token(self.conversation.token)
        if self.conversation.routed_at is not None:
            await self.channel_layer.group_send(services.inbox_group(self.conversation), event)

    async def chat_message(self, event):
        await self.send_json({"type": "message", **event["message"]})

    async def chat_routed(self, event):
        self.conversation = await _conversation_by_token(self.conversation.token)
        await self.send_json({"type": "routed", **{key: event[key] for key in ("team", "team_name", "triage")}})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({"type": "typing", "sender": event["sender"]})


@database_sync_to_async
def _agent_teams(user) -> list[tuple[str, str]]:
    return [(team.slug, team.name) for team in selectors.agent_teams(user=user)]


@database_sync_to_async
def _agent_allowed(user) -> bool:
    return selectors.agent_can_use_console(user=user)


@database_sync_to_async
def _inbox(user) -> list[dict[str, Any]]:
    return selectors.agent_inbox(user=user)


@database_sync_to_async
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
    directly, and a closing socket says goodbye.
    """

    frame_types = frozenset({"open", "reply", "reassign", "close", "typing"})
    write_types = frozenset({"reply", "reassign", "close"})

    async def connect(self):
        self.user = self.scope.get("user")
        self.teams: list[tuple[str, str]] = []
        if self.user is None or not self.user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", "Log in at /admin/login/ first.")
            return
        if not await _agent_allowed(self.user):
            await self.refuse(CLOSE_FORBIDDEN, "forbidden", "Only staff and team members can use the agent console.")
            return
        self.teams = await _agent_teams(self.user)
        self.online: dict[str, dict[str, str]] = {slug: {} for slug, _ in self.teams}
        self.inbox_groups = [services.team_group(slug) for slug, _ in self.teams] + [services.TRIAGE_GROUP]
        for group in self.inbox_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({
            "type": "inbox",
            "teams": [{"slug": slug, "name": name} for slug, name in self.teams],
            "conversations": await _inbox(self.user),
        })
        await self._presence_announce("presence.join")

    async def disconnect(self, code):
        if not self.teams and not getattr(self, "inbox_groups", None):
            return
        await self._presence_announce("presence.leave")
        for group in self.inbox_groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _presence_announce(self, kind: str) -> None:
        for slug, _ in self.teams:
            event = {"type": kind, "team": slug, "user": self.user.get_username(), "channel": self.channel_name}
            await self.channel_layer.group_send(services.team_group(slug), event)

    async def frame_open(self, frame):
        await self.send_json({"type": "history", **await _agent_act(self.user, frame.get("conversation_id"), _history_payload)})

    async def frame_reply(self, frame):
        def reply(conversation):
            return services.message_post_agent(
                conversation=conversation, user=self.user, text=frame.get("text"), client_id=frame.get("client_id")
            )

        result = await _agent_act(self.user, frame.get("conversation_id"), reply)
        await self.send_json({
            "type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk,
            "conversation_id": result.message.conversation_id,
        })

    async def frame_reassign(self, frame):
        await _agent_act(self.user, frame.get("conversation_id"), _reassign(self.user, frame.get("team")))

    async def frame_close(self, frame):
        close = lambda c: services.conversation_close(conversation=c, user=self.user)  # noqa: E731
        await _agent_act(self.user, frame.get("conversation_id"), close)

    async def frame_typing(self, frame):
        groups = await _agent_act(
            self.user, frame.get("conversation_id"),
            lambda c: [services.conversation_group(c.pk), services.inbox_group(c)],
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

    async def conversation_updated(self, event):
        await self.send_json({"type": "conversation.updated", "conversation": event["conversation"]})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json({
                "type": "typing", "sender": event["sender"], "author": event.get("author"),
                "conversation_id": event["conversation_id"],
            })

    async def _presence_changed(self, team: str) -> None:
        online = sorted(set(self.online[team].values()))
        await self.send_json({"type": "presence", "team": team, "online": online})

    async def presence_join(self, event):
        team = event["team"]
        if team not in self.online:
            return
        self.online[team][event["channel"]] = event["user"]
        if event["channel"] != self.channel_name:
            reply = {"type": "presence.here", "team": team, "user": self.user.get_username()}
            await self.channel_layer.send(event["channel"], {**reply, "channel": self.channel_name})
        await self._presence_changed(team)

    async def presence_here(self, event):
        if event["team"] in self.online:
            self.online[event["team"]][event["channel"]] = event["user"]
            await self._presence_changed(event["team"])

    async def presence_leave(self, event):
        if event["team"] in self.online and self.online[event["team"]].pop(event["channel"], None):
            await self._presence_changed(event["team"])
