"""The agent console's websocket ``/ws/agent/``: the inboxes an agent works, kept to their access.

Access (chatbot.selectors.agent_access_get) is read at connect, again before every action (and
in full after an action it refused), every AGENT_ACCESS_RECHECK_SECONDS, and whenever
chatbot.signals says it changed: a socket whose access has ended gets an error frame and close
4403; one whose teams or triage right changed joins and leaves the inbox groups to match and gets
a new ``inbox`` frame. The timer covers what no signal reaches this process with: a change made by
another process on the in-memory layer, a bulk update, a session that expires by date.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from channels.exceptions import StopConsumer

from chatbot import broadcast, live_routing, selectors, services
from chatbot.chat_db import batcher, db_call, db_run, posts_store
from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.core.errors import AgentAccessError, NotFoundError
from chatbot.frames import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonFrameConsumer
from chatbot.models import Conversation, Message
from chatbot.not_a_request import message_mark_not_a_request
from chatbot.signals import AGENT_ACCESS_EVENT, agent_group

logger = logging.getLogger(__name__)
# A teammate not heard from for this many heartbeats is taken for gone (see AgentConsumer).
PRESENCE_EXPIRY_BEATS = 3


def _agent_act(user_id: object, session_key: str | None, conversation_id: object, action: Callable):
    """``action(user, conversation)`` after re-reading the agent's access (AgentAccessError if it ended)
    on a conversation they may act on now (else NotFoundError)."""
    access = selectors.agent_access_get(user_id=user_id, session_key=session_key, with_teams=False)
    if access.refusal:
        raise access.error()
    conversation = selectors.conversation_get_for_agent(access=access, conversation_id=conversation_id)
    return action(access.user, conversation)


def _history_payload(user, conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": selectors.conversation_summary(conversation=conversation),
        "messages": selectors.conversation_messages(conversation=conversation),
        "no_intent_ids": selectors.conversation_no_intent_ids(conversation=conversation),
    }


def _mark(message_id: object) -> Callable:
    return lambda user, c: message_mark_not_a_request(conversation=c, message_id=message_id, user=user)


def _reassign(team_slug: object) -> Callable:
    from routing.selectors import team_get_by_slug

    return lambda user, c: services.conversation_reassign(
        conversation=c, team=team_get_by_slug(slug=team_slug), user=user
    )


def _inbox_groups(access: selectors.AgentAccess) -> list[str]:
    groups = [broadcast.team_group(team.slug) for team in access.teams]
    return groups + [broadcast.TRIAGE_GROUP, broadcast.WAITING_GROUP] if access.triage else groups


def _inbox_frame(access: selectors.AgentAccess) -> dict[str, Any]:
    return {
        "type": "inbox",
        "teams": [{"slug": team.slug, "name": team.name} for team in access.teams],
        "triage": access.triage,
        "conversations": selectors.agent_inbox(access=access),
    }


class AgentConsumer(JsonFrameConsumer):
    """An agent's console: every inbox they work (their teams, or all for staff) plus triage if allowed.

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

    frame_types = frozenset({"open", "reply", "reassign", "close", "typing", "not_a_request"})
    write_types = frozenset({"reply", "reassign", "close", "not_a_request"})
    socket_kind = "agent"
    heartbeat: asyncio.Task | None = None
    recheck: asyncio.Task | None = None
    access: selectors.AgentAccess | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:  # however the consumer ends (a handler's exception too), its timers stop with it
            self._timers_cancel()

    def _timers_cancel(self) -> None:
        for task in (self.heartbeat, self.recheck):
            if task is not None:
                task.cancel()

    async def connect(self):
        user = self.scope.get("user")
        self.inbox_groups: list[str] = []
        self.online: dict[str, dict[str, str]] = {}
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", "Log in at /agent/login/ first.")
            return
        self.user_id = user.pk
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        # Joined before access is read: a change committed meanwhile is still heard.
        await self.channel_layer.group_add(agent_group(self.user_id), self.channel_name)
        access = await db_run(self._access_read)
        if access.refusal:
            await self.channel_layer.group_discard(agent_group(self.user_id), self.channel_name)
            await self.refuse(CLOSE_FORBIDDEN, access.refusal, selectors.ACCESS_REFUSALS[access.refusal])
            return
        self.access, self.user = access, access.user
        # channel -> (when it last announced itself (monotonic), its beat interval or 0)
        self.heard: dict[str, tuple[float, float]] = {}
        self.beat_seconds = max(0.0, float(setting("PRESENCE_HEARTBEAT_SECONDS")))
        await self._subscribe(access)
        await self.accept()
        await self.send_json(await db_run(_inbox_frame, access))
        await self._presence_announce("presence.join", access.team_slugs)
        if self.beat_seconds > 0:
            self.heartbeat = asyncio.create_task(self._heartbeat())
        recheck_seconds = max(0.0, float(setting("AGENT_ACCESS_RECHECK_SECONDS")))
        if recheck_seconds > 0:
            self.recheck = asyncio.create_task(self._access_recheck(recheck_seconds))

    def _access_read(self, *, with_teams: bool = True) -> selectors.AgentAccess:
        return selectors.agent_access_get(user_id=self.user_id, session_key=self.session_key, with_teams=with_teams)

    async def disconnect(self, code):
        if self.access is not None:
            await self._leave()

    async def _leave(self) -> None:
        """Say goodbye and leave every group; the socket hears nothing more."""
        self._timers_cancel()  # before the goodbye: a later beat would list it again
        await self._presence_announce("presence.leave", self.access.team_slugs)
        for group in [*self.inbox_groups, agent_group(self.user_id)]:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.access, self.inbox_groups = None, []

    async def _end(self, error: AgentAccessError) -> None:
        """Access has ended: leave, say why, close 4403, and stop the consumer."""
        await self._leave()
        await self.send_error(error.code, error.message)
        await self.close(code=CLOSE_FORBIDDEN)
        raise StopConsumer()

    async def _subscribe(self, access: selectors.AgentAccess) -> None:
        """Be in exactly the inbox groups ``access`` allows."""
        wanted = _inbox_groups(access)
        for group in set(self.inbox_groups) - set(wanted):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(wanted) - set(self.inbox_groups):
            await self.channel_layer.group_add(group, self.channel_name)
        self.inbox_groups = wanted
        self.online = {slug: self.online.get(slug, {}) for slug in access.team_slugs}

    async def agent_access_changed(self, event):
        if self.access is None:
            return
        if event.get("session_ended") and event["session_ended"] == self.session_key:
            await self._end(selectors.AgentAccess(user=None, refusal="session_ended").error())
        await self._access_refresh()

    async def _access_recheck(self, seconds: float) -> None:
        """Every ``seconds``, the same event a signal sends: handled in the consumer's own loop, in turn
        with every other event (so an ending socket stops there)."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.channel_layer.send(self.channel_name, {"type": AGENT_ACCESS_EVENT})
            except Exception:  # a dropped layer connection: the next tick tries again
                logger.exception("chat: access re-check of %s failed", self.channel_name)

    async def _access_refresh(self) -> None:
        """Re-read access: end the socket if it is over, else match subscriptions and inbox to it."""
        if self.access is None:
            return
        access = await db_run(self._access_read)
        if access.refusal:
            await self._end(access.error())
        before, self.access, self.user = self.access, access, access.user
        if (access.team_slugs, access.triage) == (before.team_slugs, before.triage):
            return
        await self._presence_announce("presence.leave", before.team_slugs - access.team_slugs)
        await self._subscribe(access)
        await self.send_json(await db_run(_inbox_frame, access))
        await self._presence_announce("presence.join", access.team_slugs - before.team_slugs)

    async def _act(self, conversation_id: object, action: Callable) -> tuple[Any, list]:
        """``action(user, conversation)`` on a DB thread, access re-read first; ends the socket if it is gone."""
        try:
            return await db_call(_agent_act, self.user_id, self.session_key, conversation_id, action)
        except AgentAccessError as exc:
            await self._end(exc)
        except NotFoundError:  # perhaps a team this socket still listens to is no longer the agent's
            await self._access_refresh()
            raise

    async def _presence_announce(self, kind: str, teams: frozenset[str]) -> None:
        for slug in sorted(teams):
            event = {"type": kind, "team": slug, **self._presence_self()}
            await self.channel_layer.group_send(broadcast.team_group(slug), event)

    def _presence_self(self) -> dict[str, Any]:
        return {"user": self.user.get_username(), "channel": self.channel_name, "beat_seconds": self.beat_seconds}

    async def frame_open(self, frame):
        history, _ = await self._act(frame.get("conversation_id"), _history_payload)
        await self.send_json({"type": "history", **history})

    async def frame_reply(self, frame):
        started = time.perf_counter()
        (user, conversation_id), _ = await self._act(frame.get("conversation_id"), lambda user, c: (user, c.pk))
        request = services.PostRequest(
            conversation_id=conversation_id,
            text=frame.get("text"),
            client_id=frame.get("client_id"),
            sender=Message.Sender.AGENT,
            author=user,
        )
        result, broadcasts = await batcher(posts_store).submit(request)
        await self.send_json(
            {
                "type": "ack",
                "client_id": result.message.client_id,
                "message_id": result.message.pk,
                "conversation_id": result.message.conversation_id,
            }
        )
        metrics.ACK_SECONDS.labels("agent").observe(time.perf_counter() - started)
        await broadcast.broadcasts_send(broadcasts)

    async def frame_reassign(self, frame):
        _, broadcasts = await self._act(frame.get("conversation_id"), _reassign(frame.get("team")))
        await broadcast.broadcasts_send(broadcasts)

    async def frame_close(self, frame):
        close = lambda user, c: services.conversation_close(conversation=c, user=user)  # noqa: E731
        _, broadcasts = await self._act(frame.get("conversation_id"), close)
        await broadcast.broadcasts_send(broadcasts)

    async def frame_not_a_request(self, frame):
        # Re-placed before the answer, so this console's next reply comes after the move.
        result, broadcasts = await self._act(frame.get("conversation_id"), _mark(frame.get("message_id")))
        await broadcast.broadcasts_send(broadcasts)
        if result.reevaluate:
            try:
                await live_routing.conversation_reevaluate(result.conversation_id)
            except Exception:  # the mark is committed; the customer's next message places it again
                logger.exception("chat: re-placing conversation %s after a mark failed", result.conversation_id)
        await self.send_json(
            {
                "type": "marked",
                "conversation_id": result.conversation_id,
                "message_id": result.message_id,
                "ticket_id": result.ticket_id,
                "created": result.created,
            }
        )

    async def message_marked(self, event):
        await self.send_json(
            {"type": "message.marked", **{key: event[key] for key in ("conversation_id", "message_id")}}
        )

    async def frame_typing(self, frame):
        groups, _ = await self._act(
            frame.get("conversation_id"), lambda user, c: [broadcast.conversation_group(c.pk), broadcast.inbox_group(c)]
        )
        event = {
            "type": "chat.typing",
            "sender": "agent",
            "author": self.user.get_username(),
            "conversation_id": frame.get("conversation_id"),
            "origin": self.channel_name,
        }
        for group in groups:
            await self.channel_layer.group_send(group, event)

    async def chat_message(self, event):
        await self.send_json({"type": "message", **event["message"]})

    async def conversation_assigned(self, event):
        await self.send_json(
            {"type": "conversation.assigned", **{key: event[key] for key in ("conversation", "messages")}}
        )

    async def conversation_waiting(self, event):
        await self.send_json(
            {"type": "conversation.waiting", **{key: event[key] for key in ("conversation", "messages")}}
        )

    async def conversation_updated(self, event):
        await self.send_json({"type": "conversation.updated", "conversation": event["conversation"]})

    async def chat_typing(self, event):
        if event["origin"] != self.channel_name:
            await self.send_json(
                {
                    "type": "typing",
                    "sender": event["sender"],
                    "author": event.get("author"),
                    "conversation_id": event["conversation_id"],
                }
            )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.beat_seconds)
            try:
                await self._presence_announce("presence.here", self.access.team_slugs)
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
