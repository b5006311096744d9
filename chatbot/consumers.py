"""The live chat's websockets: customers on ``/ws/chat/``, agents on ``/ws/agent/``.

Frames are JSON objects with a ``type``. Consumers parse, call one service or selector on a
chat database thread (``db_run``/``db_call``, see chatbot.ws_base), and render; bad input gets
an ``error`` frame and the connection stays up, except for gross abuse (see FrameGuard).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from chatbot import selectors, services
from chatbot.errors import NoModelError
from chatbot.models import Conversation
from chatbot.ws_base import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonFrameConsumer, db_call, db_run, post_batcher

logger = logging.getLogger(__name__)


def router_get():
    """This process's router, imported late: loading it pulls in onnxruntime."""
    from routing.router import get_router

    return get_router()


async def _shadow_score(conversation_id: int, message_id: int, text: str) -> None:
    from routing.shadow import ashadow_score  # late: it loads onnxruntime

    await ashadow_score(conversation_id=conversation_id, message_id=message_id, text=text)


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
        request = services.PostRequest(
            conversation_id=self.conversation.pk, text=frame.get("text"), client_id=frame.get("client_id")
        )
        result, broadcasts = await post_batcher().post(request)
        # Stored and committed: ack first, then tell the other sockets (in this socket's order).
        await self.send_json({"type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk})
        await services.broadcasts_send(broadcasts, origin=self.channel_name)
        # Checked after every message, not only the first: a resend after a crash between
        # storing and routing still gets the conversation into an inbox.
        if not result.routed:
            prediction = await _predict(result.message.text)
            await db_run(
                services.conversation_route,
                conversation=self.conversation, prediction=prediction, message=result.message,
            )
            # A shadow candidate scores the same text beside the active model; never raises.
            await _shadow_score(self.conversation.pk, result.message.pk, result.message.text)

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        event = {
            "type": "chat.typing", "sender": "customer", "conversation_id": self.conversation.pk,
            "origin": self.channel_name,
        }
        await services.broadcasts_send([(self.group, event)])
        if self.conversation.routed_at is None:
            self.conversation = await db_run(selectors.conversation_get_by_token, token=self.conversation.token)
        if self.conversation.routed_at is not None:
            await services.broadcasts_send([(services.inbox_group(self.conversation), event)])

    async def chat_message(self, event):
        # The socket that sent a message has its ack; the conversation's other sockets need it.
        if event.get("origin") != self.channel_name:
            await self.send_json({"type": "message", **event["message"]})

    async def chat_routed(self, event):
        self.conversation = await db_run(selectors.conversation_get_by_token, token=self.conversation.token)
        await self.send_json({"type": "routed", **{key: event[key] for key in ("team", "team_name", "triage")}})

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
    directly, and a closing socket says goodbye.
    """

    frame_types = frozenset({"open", "reply", "reassign", "close", "typing"})
    write_types = frozenset({"reply", "reassign", "close"})

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
        self.inbox_groups = [services.team_group(slug) for slug, _ in self.teams] + [services.TRIAGE_GROUP]
        for group in self.inbox_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({
            "type": "inbox",
            "teams": [{"slug": slug, "name": name} for slug, name in self.teams],
            "conversations": await db_run(selectors.agent_inbox, user=self.user),
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
        history = await db_run(_agent_act, self.user, frame.get("conversation_id"), _history_payload)
        await self.send_json({"type": "history", **history})

    async def frame_reply(self, frame):
        def reply(conversation):
            return services.message_post_agent(
                conversation=conversation, user=self.user, text=frame.get("text"), client_id=frame.get("client_id")
            )

        result, broadcasts = await db_call(_agent_act, self.user, frame.get("conversation_id"), reply)
        await self.send_json({
            "type": "ack", "client_id": result.message.client_id, "message_id": result.message.pk,
            "conversation_id": result.message.conversation_id,
        })
        await services.broadcasts_send(broadcasts)

    async def frame_reassign(self, frame):
        await db_run(_agent_act, self.user, frame.get("conversation_id"), _reassign(self.user, frame.get("team")))

    async def frame_close(self, frame):
        close = lambda c: services.conversation_close(conversation=c, user=self.user)  # noqa: E731
        await db_run(_agent_act, self.user, frame.get("conversation_id"), close)

    async def frame_typing(self, frame):
        groups = await db_run(
            _agent_act, self.user, frame.get("conversation_id"),
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
