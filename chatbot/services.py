"""Writes for the live chat: start, post, route, reassign, close.

Every write that other sockets must see broadcasts to a channel-layer group in
``transaction.on_commit``: a reader never hears of a row that was rolled back.

Groups: ``conversation.<id>`` holds the customer's sockets; ``team.<slug>`` and ``triage``
hold the agents of an inbox. A conversation's inbox group is its team's, or ``triage``.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Protocol
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatbot import selectors
from chatbot.errors import ConflictError, SwitchboardError
from chatbot.models import Conversation, Message
from finetune.services import ticket_record_correction, ticket_text_validate
from routing.models import Team

TRIAGE_GROUP = "triage"
CLIENT_ID_MAX_CHARS = 64
CLOSED_NOTICE = "This conversation was closed by support. Write again to start a new one."
# A conversation's updated_at (the inbox order) moves on a new message only when at least this
# old: one UPDATE per conversation every few seconds instead of one per message.
UPDATED_AT_RESOLUTION_SECONDS = 5.0


class PredictionLike(Protocol):
    """What the router returns for one text (routing.loaded_model.Prediction)."""

    team: str
    confidence: float
    triage: bool
    model_version: str


@dataclass(frozen=True)
class PostResult:
    message: Message
    # False when the client_id was seen before: the stored message is returned, nothing new.
    created: bool
    # Whether the conversation had been routed when the message was stored.
    routed: bool


def team_group(slug: str) -> str:
    return f"team.{slug}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def inbox_group(conversation: Conversation) -> str:
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


def client_id_validate(*, client_id: object) -> str:
    if not isinstance(client_id, str) or not client_id.strip():
        raise SwitchboardError(
            "client_id must be a non-empty string chosen by the client (e.g. a UUID).",
            code="invalid_client_id",
        )
    if len(client_id) > CLIENT_ID_MAX_CHARS:
        raise SwitchboardError(
            f"client_id is {len(client_id)} characters; the limit is {CLIENT_ID_MAX_CHARS}.",
            code="invalid_client_id",
        )
    return client_id


def conversation_start() -> Conversation:
    """A new open conversation; it enters an inbox only when its first message is routed."""
    return Conversation.objects.create()


def conversations_lock(conversation_ids: list[int]) -> list[Conversation]:
    """Lock these conversation rows (in id order: concurrent lockers cannot deadlock), teams attached.

    The team comes joined in (of=self: PostgreSQL refuses FOR UPDATE on the nullable side of an
    outer join). A lock that waited for a concurrent routing or reassignment gets the locked row
    re-read but the joined team columns as they were (team_id set, team None): those teams are
    read again after the lock.
    """
    rows = Conversation.objects.select_for_update(of=("self",)).select_related("team")
    rows = list(rows.filter(pk__in=conversation_ids).order_by("pk"))
    stale = {row.team_id for row in rows if row.team_id is not None and getattr(row.team, "pk", None) != row.team_id}
    if stale:
        teams = Team.objects.in_bulk(stale)
        for row in rows:
            if row.team_id in stale:
                row.team = teams[row.team_id]
    return rows


def _lock(conversation: Conversation) -> Conversation:
    rows = conversations_lock([conversation.pk])
    if not rows:
        raise Conversation.DoesNotExist(f"Conversation {conversation.pk} does not exist.")
    return rows[0]


def _open_or_raise(conversation: Conversation) -> None:
    if conversation.status == Conversation.Status.CLOSED:
        raise SwitchboardError(
            f"Conversation {conversation.pk} is closed; start a new conversation to write again.",
            code="conversation_closed",
        )


def _message_events(conversation: Conversation, message: Message) -> list[tuple[str, dict[str, Any]]]:
    event = {"type": "chat.message", "message": selectors.message_payload(message=message)}
    # Before routing the conversation belongs to no inbox; conversation.assigned carries it then.
    if conversation.routed_at is None:
        return [(conversation_group(conversation.pk), event)]
    return [(conversation_group(conversation.pk), event), (inbox_group(conversation), event)]


def _message_broadcast(conversation: Conversation, message: Message) -> None:
    for group, event in _message_events(conversation, message):
        broadcast_on_commit(group, event)


def _touch(conversation: Conversation, *, sender: str, author) -> None:
    """Bump updated_at (at most every UPDATED_AT_RESOLUTION_SECONDS); the first agent reply assigns."""
    now = timezone.now()
    fields: dict[str, Any] = {}
    if (now - conversation.updated_at).total_seconds() >= UPDATED_AT_RESOLUTION_SECONDS:
        fields["updated_at"] = now
    if sender == Message.Sender.AGENT and conversation.assigned_agent_id is None:
        fields.update(updated_at=now, assigned_agent=author)
    if fields:
        Conversation.objects.filter(pk=conversation.pk).update(**fields)


def _post_stored(*, conversation: Conversation, client_id: str) -> PostResult | None:
    """A resend: the message stored under ``client_id`` before (None if there is none)."""
    existing = Message.objects.select_related("author").filter(conversation=conversation, client_id=client_id).first()
    if existing is None:
        return None
    routed_at = Conversation.objects.filter(pk=conversation.pk).values_list("routed_at", flat=True).get()
    return PostResult(message=existing, created=False, routed=routed_at is not None)


def _post(
    *, conversation: Conversation, sender: str, text: object, client_id: object, author=None
) -> PostResult:
    # The row lock orders this write with routing, reassigning and closing; the unique
    # (conversation, client_id) constraint, not a lookup first, makes a resend idempotent.
    cleaned = ticket_text_validate(text=text)
    client_id = client_id_validate(client_id=client_id)
    try:
        with transaction.atomic():
            locked = _lock(conversation)
            _open_or_raise(locked)
            message = Message.objects.create(
                conversation=locked, sender=sender, text=cleaned, client_id=client_id, author=author
            )
            _touch(locked, sender=sender, author=author)
            _message_broadcast(locked, message)
    except IntegrityError:
        stored = _post_stored(conversation=conversation, client_id=client_id)
        if stored is None:
            raise
        return stored
    return PostResult(message=message, created=True, routed=locked.routed_at is not None)


def message_post_customer(*, conversation: Conversation, text: object, client_id: object) -> PostResult:
    """Store a customer's message once per client_id; a resend returns the stored one."""
    return _post(conversation=conversation, sender=Message.Sender.CUSTOMER, text=text, client_id=client_id)


def message_post_agent(
    *, conversation: Conversation, user: AbstractBaseUser, text: object, client_id: object
) -> PostResult:
    """Store an agent's reply once per client_id; the first reply assigns the agent."""
    return _post(
        conversation=conversation, sender=Message.Sender.AGENT, text=text, client_id=client_id, author=user
    )


def _assignment_events(
    conversation: Conversation, messages: list[dict[str, Any]], first_text: str
) -> list[tuple[str, dict[str, Any]]]:
    """The new inbox hears of the conversation (with its messages); the customer of its team."""
    summary = selectors.conversation_summary(conversation=conversation, first_text=first_text)
    assigned = {"type": "conversation.assigned", "conversation": summary, "messages": messages}
    routed = {"type": "chat.routed", **selectors.conversation_team_payload(conversation=conversation)}
    return [(inbox_group(conversation), assigned), (conversation_group(conversation.pk), routed)]


def _assignment_broadcast(conversation: Conversation) -> None:
    messages = selectors.conversation_messages(conversation=conversation)
    first_text = selectors.conversation_first_customer_text(conversation=conversation)
    for group, event in _assignment_events(conversation, messages, first_text):
        broadcast_on_commit(group, event)


def _correction_from(conversation: Conversation) -> Team | None:
    # Out of triage the router's guess is what was corrected; out of a team, that team.
    return conversation.team if conversation.team_id else conversation.predicted_team


@transaction.atomic
def conversation_reassign(*, conversation: Conversation, team: Team, user: AbstractBaseUser) -> Conversation:
    """Move a conversation to ``team`` (from another team or from triage) and learn from it.

    The customer's first message, the text the router saw, becomes a correction ticket labelled
    ``team`` for the next training run.
    """
    locked = _lock(conversation)
    _open_or_raise(locked)
    if locked.team_id == team.pk:
        raise ConflictError(f"Conversation {locked.pk} is already in {team.name}.", code="same_team")
    if not team.active:
        raise SwitchboardError(f"Team {team.slug} is inactive; pick an active team.", code="inactive_team")
    text = selectors.conversation_first_customer_text(conversation=locked)
    if text:
        ticket_record_correction(
            text=text,
            team=team,
            corrected_from=_correction_from(locked),
            user=user,
            model_version=locked.model_version,
            conversation_id=locked.pk,
        )
    old_group = inbox_group(locked) if locked.routed_at else None
    locked.team = team
    locked.routed_at = locked.routed_at or timezone.now()
    locked.assigned_agent = None
    locked.save()
    if old_group:
        summary = selectors.conversation_summary(conversation=locked)
        broadcast_on_commit(old_group, {"type": "conversation.updated", "conversation": summary})
    _assignment_broadcast(locked)
    return locked


@transaction.atomic
def conversation_close(*, conversation: Conversation, user: AbstractBaseUser | None) -> Conversation:
    """Close a conversation; the customer is told by a system message. Closing twice is a no-op."""
    locked = _lock(conversation)
    if locked.status == Conversation.Status.CLOSED:
        return locked
    locked.status = Conversation.Status.CLOSED
    locked.closed_at = timezone.now()
    locked.save()
    notice = Message.objects.create(conversation=locked, sender=Message.Sender.SYSTEM, text=CLOSED_NOTICE)
    event = {"type": "chat.message", "message": selectors.message_payload(message=notice)}
    broadcast_on_commit(conversation_group(locked.pk), event)
    summary = selectors.conversation_summary(conversation=locked)
    broadcast_on_commit(inbox_group(locked), {"type": "conversation.updated", "conversation": summary})
    return locked
