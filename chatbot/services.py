"""Writes for the live chat: post messages (the one write path), reassign, close.

Every message, a customer's or an agent's, goes through ``messages_post``: many sockets'
messages in one transaction (the consumers' batcher calls it), a single post being a batch of
one. Its rules: a message is stored once per (conversation, client_id), a closed conversation
refuses, a customer's first message starts the conversation, the first agent reply assigns the
agent, and broadcasts leave only after the commit (chatbot.broadcast). Conversation rows are
locked in id order, so concurrent batches cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatbot import selectors
from chatbot.broadcast import (
    WAITING_GROUP,
    Events,
    Outbox,
    broadcast_on_commit,
    conversation_group,
    deliver_all,
    inbox_group,
)
from chatbot.conversation_keys import conversation_ids_by_key, conversation_key_hash
from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.core.errors import ConflictError, SwitchboardError
from chatbot.core.text import ticket_text_validate
from chatbot.models import Conversation, Message
from finetune.services import ticket_record_correction
from routing.models import Team

CLIENT_ID_MAX_CHARS = 64
CLOSED_NOTICE = "This conversation was closed by support. Write again to start a new one."
# A conversation's updated_at (the inbox order) moves on a new message only when at least this
# old: one UPDATE per conversation every few seconds instead of one per message.
UPDATED_AT_RESOLUTION_SECONDS = 5.0


@dataclass(frozen=True)
class PostRequest:
    """One message for ``messages_post``, as received (validated there).

    ``conversation_id`` None: a customer's first message, which starts a new conversation, or,
    with the ``conversation_key`` that started one, goes to it (chatbot.conversation_keys).
    """

    conversation_id: int | None
    text: object
    client_id: object
    sender: str = Message.Sender.CUSTOMER
    author: AbstractBaseUser | None = None
    conversation_key: object = None


@dataclass(frozen=True)
class PostResult:
    message: Message
    # False when the client_id was seen before: the stored message is returned, nothing new.
    created: bool
    # Whether the conversation had been routed when the message was stored.
    routed: bool
    # The conversation the message is in; ``started`` when this message created it.
    conversation: Conversation | None = None
    started: bool = False


Outcome = tuple[PostResult | SwitchboardError, Events]


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


def _closed_error(conversation_id: int) -> SwitchboardError:
    return SwitchboardError(
        f"Conversation {conversation_id} is closed; start a new conversation to write again.",
        code="conversation_closed",
    )


def message_events(conversation: Conversation, message: Message) -> Events:
    event = {"type": "chat.message", "message": selectors.message_payload(message=message)}
    # Before routing the conversation belongs to no inbox; conversation.assigned (or .waiting,
    # once it is known to carry no intent yet) carries its history then.
    if conversation.routed_at is None:
        waiting = [(WAITING_GROUP, event)] if conversation.routing_reason else []
        return [(conversation_group(conversation.pk), event), *waiting]
    return [(conversation_group(conversation.pk), event), (inbox_group(conversation), event)]


def messages_post(*, requests: list[PostRequest]) -> list[Outcome]:
    """Store many messages in one transaction: one outcome per request, in order.

    Each outcome is the PostResult (or the SwitchboardError refusing that one message) and the
    broadcasts its commit produced. An invalid message starts no conversation.
    """
    cleaned: dict[int, tuple[str, str]] = {}
    keys: dict[int, str] = {}
    outcomes: list[Outcome | None] = [None] * len(requests)
    limit = int(setting("CHAT_MAX_TEXT_CHARS"))
    for index, request in enumerate(requests):
        try:
            text = ticket_text_validate(text=request.text, limit=limit)
            client_id = client_id_validate(client_id=request.client_id)
            key = conversation_key_hash(key=request.conversation_key) if request.conversation_id is None else None
            cleaned[index] = (text, client_id)
        except SwitchboardError as exc:
            outcomes[index] = (exc, [])
            continue
        if key is not None:
            keys[index] = key
    if cleaned:
        try:
            stored = _posts_store(requests, cleaned, keys, check_resends=False)
        except IntegrityError:
            # A resend of a stored client_id or conversation key (rare: reconnects): again, looking them up first.
            stored = _posts_store(requests, cleaned, keys, check_resends=True)
        for index, outcome in stored.items():
            outcomes[index] = outcome
            if (
                isinstance(outcome[0], PostResult) and outcome[0].created
            ):  # committed by now: a rolled-back batch raised above
                metrics.MESSAGES_STORED.labels(outcome[0].message.sender).inc()
    return outcomes  # type: ignore[return-value]


def _posts_store(
    requests: list[PostRequest], cleaned: dict[int, tuple[str, str]], keys: dict[int, str], *, check_resends: bool
):
    outboxes = {index: Outbox() for index in cleaned}
    try:
        with transaction.atomic():
            targets, started = _targets(requests, list(cleaned), keys)
            seen = _stored_by_client_id(targets, cleaned) if check_resends else {}
            results, new = _new_messages(requests, cleaned, targets, seen, started)
            Message.objects.bulk_create(new.values())
            _touch_many([(targets[index], message) for index, message in new.items()])
            events = {index: message_events(targets[index], m) for index, m in new.items()}
            transaction.on_commit(lambda: deliver_all(outboxes, events))
    finally:
        for outbox in outboxes.values():
            outbox.open = False
    return {index: (results[index], outboxes[index].events) for index in cleaned}


def _targets(requests: list[PostRequest], indices: list[int], keys: dict[int, str]):
    """Each request's conversation: the existing ones locked; for first messages the one their key
    started, else a new one (one per key). Returns them and the indices whose conversation is new."""
    first = [i for i in indices if requests[i].conversation_id is None]
    keyed = conversation_ids_by_key(key_hashes={keys[i] for i in first if i in keys})
    wanted = {requests[i].conversation_id for i in indices if requests[i].conversation_id is not None}
    # One lock, in id order, for the named and the keyed rows: concurrent batches cannot deadlock.
    locked = {c.pk: c for c in conversations_lock(sorted(wanted | set(keyed.values())))}
    targets: dict[int, Conversation | None] = {i: locked.get(requests[i].conversation_id) for i in indices}
    starting = [i for i in first if keyed.get(keys.get(i)) not in locked]
    # A keyless first message starts a conversation of its own (slot -1 - index); keyed ones share one per key.
    new = {keys.get(i, -1 - i): Conversation(start_key_hash=keys.get(i)) for i in starting}
    Conversation.objects.bulk_create(new.values())
    for i in first:
        targets[i] = locked.get(keyed.get(keys.get(i))) or new[keys.get(i, -1 - i)]
    return targets, set(starting)


def _new_messages(requests, cleaned, targets, seen, started):
    results: dict[int, PostResult | SwitchboardError] = {}
    new: dict[int, Message] = {}
    for index, (text, client_id) in cleaned.items():
        request, conversation = requests[index], targets[index]
        if conversation is None or conversation.status == Conversation.Status.CLOSED:
            results[index] = _closed_error(request.conversation_id or conversation.pk)
            continue
        routed = conversation.routed_at is not None
        key = (conversation.pk, client_id)
        if key in seen:
            results[index] = PostResult(message=seen[key], created=False, routed=routed, conversation=conversation)
            continue
        seen[key] = new[index] = Message(
            conversation=conversation, sender=request.sender, text=text, client_id=client_id, author=request.author
        )
        results[index] = PostResult(
            message=new[index], created=True, routed=routed, conversation=conversation, started=index in started
        )
    return results, new


def _stored_by_client_id(targets: dict[int, Conversation | None], cleaned: dict[int, tuple[str, str]]):
    ids = [c.pk for c in targets.values() if c is not None]
    client_ids = {client_id for _, client_id in cleaned.values()}
    rows = Message.objects.filter(conversation_id__in=ids, client_id__in=client_ids)
    return {(m.conversation_id, m.client_id): m for m in rows.select_related("author")}


def _touch_many(posted: list[tuple[Conversation, Message]]) -> None:
    """Bump stale updated_at in one UPDATE; the first agent reply also assigns its agent and
    ends the model's say over where the conversation goes."""
    now = timezone.now()
    stale = {c.pk for c, _ in posted if (now - c.updated_at).total_seconds() >= UPDATED_AT_RESOLUTION_SECONDS}
    for conversation, message in posted:
        if message.sender == Message.Sender.AGENT and conversation.agent_replied_at is None:
            conversation.assigned_agent = conversation.assigned_agent or message.author
            conversation.agent_replied_at = now
            Conversation.objects.filter(pk=conversation.pk).update(
                updated_at=now, assigned_agent=conversation.assigned_agent, agent_replied_at=now
            )
            stale.discard(conversation.pk)
    if stale:
        Conversation.objects.filter(pk__in=stale).update(updated_at=now)


def _assignment_events(conversation: Conversation, messages: list[dict[str, Any]], first_text: str) -> Events:
    """The new inbox hears of the conversation (with its messages); the customer of its team."""
    summary = selectors.conversation_summary(conversation=conversation, first_text=first_text)
    assigned = {"type": "conversation.assigned", "conversation": summary, "messages": messages}
    routed = {"type": "chat.routed", **selectors.conversation_team_payload(conversation=conversation)}
    return [(inbox_group(conversation), assigned), (conversation_group(conversation.pk), routed)]


def assignment_broadcast(conversation: Conversation, messages: list[dict[str, Any]], first_text: str) -> None:
    for group, event in _assignment_events(conversation, messages, first_text):
        broadcast_on_commit(group, event)


def _correction_from(conversation: Conversation) -> Team | None:
    # Out of triage the router's guess is what was corrected; out of a team, that team.
    return conversation.team if conversation.team_id else conversation.predicted_team


@transaction.atomic
def conversation_reassign(*, conversation: Conversation, team: Team, user: AbstractBaseUser) -> Conversation:
    """Move a conversation to ``team`` (from another team or from triage) and learn from it.

    The conversation's text as the router reads it (its intent-carrying turns joined) becomes a
    correction ticket labelled ``team`` for the next training run.
    """
    locked = _lock(conversation)
    if locked.status == Conversation.Status.CLOSED:
        raise _closed_error(locked.pk)
    if locked.team_id == team.pk:
        raise ConflictError(f"Conversation {locked.pk} is already in {team.name}.", code="same_team")
    if not team.active:
        raise SwitchboardError(f"Team {team.slug} is inactive; pick an active team.", code="inactive_team")
    text, _ = selectors.conversation_text(conversation_id=locked.pk)
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
    locked.routing_reason = "reassigned"
    locked.assigned_agent = None
    locked.save()
    if old_group:
        summary = selectors.conversation_summary(conversation=locked)
        broadcast_on_commit(old_group, {"type": "conversation.updated", "conversation": summary})
    messages = selectors.conversation_messages(conversation=locked)
    assignment_broadcast(locked, messages, selectors.conversation_first_customer_text(conversation=locked))
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


def conversations_move_team(*, team: Team, into: Team) -> int:
    """Move ``team``'s open conversations to ``into``'s inbox (a team merge); its agents are told."""
    moved = list(
        Conversation.objects.select_for_update()
        .filter(team=team)
        .exclude(status=Conversation.Status.CLOSED)
        .select_related("team")
    )
    Conversation.objects.filter(pk__in=[c.pk for c in moved]).update(team=into, assigned_agent=None)
    for conversation in moved:
        conversation.team, conversation.assigned_agent = into, None
        messages = selectors.conversation_messages(conversation=conversation)
        assignment_broadcast(
            conversation, messages, selectors.conversation_first_customer_text(conversation=conversation)
        )
    return len(moved)


def conversations_purge_empty(*, older_than_seconds: float) -> int:
    """Delete conversations without a single message created over ``older_than_seconds`` ago."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    empty = Conversation.objects.filter(created_at__lt=cutoff, messages__isnull=True)
    _, per_model = Conversation.objects.filter(pk__in=list(empty.values_list("pk", flat=True)[:10_000])).delete()
    return per_model.get(Conversation._meta.label, 0)
