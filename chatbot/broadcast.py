"""Broadcasts to the chat's channel-layer groups, sent only once the writing transaction commits.

Groups: ``conversation.<id>`` holds the customer's sockets; ``team.<slug>`` and ``triage`` hold
the agents of an inbox, ``waiting`` those who see the conversations without an intent yet. A conversation's inbox group is its team's, or ``triage``. A reader never
hears of a row that was rolled back: every write broadcasts in ``transaction.on_commit``.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatbot import selectors
from chatbot.models import Conversation

TRIAGE_GROUP = "triage"
# Agents who work triage also see the conversations that carry no intent yet.
WAITING_GROUP = "waiting"
Events = list[tuple[str, dict[str, Any]]]


def team_group(slug: str) -> str:
    return f"team.{slug}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def inbox_group(conversation: Conversation) -> str:
    """Where agents follow this conversation: the waiting list, triage, or its team's inbox."""
    if conversation.routed_at is None:
        return WAITING_GROUP
    if selectors.conversation_in_triage(conversation=conversation):
        return TRIAGE_GROUP
    return team_group(conversation.team.slug)


class Outbox:
    """Broadcasts committed inside ``broadcasts_collected``, for its caller to send."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.open = True


_outbox: ContextVar[Outbox | None] = ContextVar("chat_broadcast_outbox", default=None)
# Channel-layer calls in flight per event loop (see layer_slot); well under redis-py's 100.
LAYER_CONCURRENCY = 48
_layer_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


@contextmanager
def broadcasts_collected() -> Iterator[Outbox]:
    """Keep what commits inside the block in an Outbox instead of sending it from this thread.

    A consumer's database thread then never waits on the channel layer: the consumer sends the
    events on its event loop with ``broadcasts_send``. A commit after the block (an outer
    transaction) still sends at once: nothing committed is ever dropped.
    """
    outbox = Outbox()
    token = _outbox.set(outbox)
    try:
        yield outbox
    finally:
        outbox.open = False
        _outbox.reset(token)


def _deliver(outbox: Outbox | None, group: str, event: dict[str, Any]) -> None:
    if outbox is not None and outbox.open:
        outbox.events.append((group, event))
    else:
        async_to_sync(get_channel_layer().group_send)(group, event)


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to ``group`` once the current transaction commits (at once outside one)."""
    outbox = _outbox.get()
    transaction.on_commit(lambda: _deliver(outbox, group, event))


def layer_slot() -> asyncio.Semaphore:
    """Hold one while talking to the channel layer: at most LAYER_CONCURRENCY calls per event loop.

    channels_redis draws each call's connection from a redis-py pool that raises (it does not
    wait) once its 100 connections are in use: hundreds of sockets broadcasting at once would
    otherwise kill consumers with MaxConnectionsError.
    """
    loop = asyncio.get_running_loop()
    slots = _layer_slots.get(loop)
    if slots is None:
        slots = _layer_slots[loop] = asyncio.Semaphore(LAYER_CONCURRENCY)
    return slots


async def broadcasts_send(events: list[tuple[str, dict[str, Any]]], *, origin: str | None = None) -> None:
    """Send collected broadcasts in the order they were committed.

    ``origin``, the sending socket's channel name, rides along so that socket can skip its echo.
    """
    if events:
        layer = get_channel_layer()
        if origin:
            events = [(group, {**event, "origin": origin}) for group, event in events]
        async with layer_slot():
            if hasattr(layer, "group_send_many"):  # chatbot.layers: one wait for the lot
                await layer.group_send_many(events)
                return
            for group, event in events:
                await layer.group_send(group, event)


def deliver_all(outboxes: dict[int, Outbox], events: dict[int, Events]) -> None:
    """Each committed item's broadcasts into its own outbox (sent at once if that one closed)."""
    for index, found in events.items():
        for group, event in found:
            _deliver(outboxes[index], group, event)
