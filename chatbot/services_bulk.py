"""Chat writes for many sockets at once: one transaction stores or routes a whole batch.

Each server process funnels its sockets' customer messages, and the conversations waiting for
their first routing, through batchers (chatbot.ws_base); these are the services they call. The
rules are those of the single writes in chatbot.services: a message is stored once per
(conversation, client_id), closed conversations refuse, a conversation is routed once, and
broadcasts leave only after the commit. Conversation rows are locked in id order, so concurrent
batches cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, FloatField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from chatbot import selectors
from chatbot.errors import SwitchboardError
from chatbot.models import Conversation, Message, RoutingEvent
from chatbot.services import (
    UPDATED_AT_RESOLUTION_SECONDS,
    Outbox,
    PostResult,
    PredictionLike,
    _assignment_events,
    _deliver,
    _message_events,
    broadcast_on_commit,
    client_id_validate,
    conversations_lock,
)
from finetune.services import ticket_text_validate
from routing.models import ModelVersion, Team

Events = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class PostRequest:
    """One customer message for ``messages_post_customer``, as received (validated there)."""

    conversation_id: int
    text: object
    client_id: object


Outcome = tuple[PostResult | SwitchboardError, list[tuple[str, dict[str, Any]]]]


def messages_post_customer(*, requests: list[PostRequest]) -> list[Outcome]:
    """Store many customers' messages in one transaction: one outcome per request, in order.

    Each outcome is the PostResult (or the SwitchboardError refusing that one message) and the
    broadcasts its commit produced. The same rules as ``message_post_customer``: one row per
    (conversation, client_id), closed conversations refuse, each conversation row is locked
    (in id order, so concurrent batches cannot deadlock) before its messages are written.
    """
    cleaned: dict[int, tuple[str, str]] = {}
    outcomes: list[Outcome | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        try:
            text = ticket_text_validate(text=request.text)
            cleaned[index] = (text, client_id_validate(client_id=request.client_id))
        except SwitchboardError as exc:
            outcomes[index] = (exc, [])
    if cleaned:
        try:
            stored = _posts_store(requests, cleaned, check_resends=False)
        except IntegrityError:
            # A resend of a stored client_id (rare: reconnects): again, looking them up first.
            stored = _posts_store(requests, cleaned, check_resends=True)
        for index, outcome in stored.items():
            outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]


def _posts_store(requests: list[PostRequest], cleaned: dict[int, tuple[str, str]], *, check_resends: bool):
    outboxes = {index: Outbox() for index in cleaned}
    results: dict[int, PostResult | SwitchboardError] = {}
    try:
        with transaction.atomic():
            ids = sorted({requests[index].conversation_id for index in cleaned})
            locked = {c.pk: c for c in conversations_lock(ids)}
            seen = _stored_by_client_id(locked, [cleaned[i][1] for i in cleaned]) if check_resends else {}
            new: dict[int, Message] = {}
            for index, (text, client_id) in cleaned.items():
                conversation = locked.get(requests[index].conversation_id)
                key = (requests[index].conversation_id, client_id)
                if conversation is None or conversation.status == Conversation.Status.CLOSED:
                    number = requests[index].conversation_id
                    results[index] = SwitchboardError(
                        f"Conversation {number} is closed; start a new conversation to write again.",
                        code="conversation_closed",
                    )
                elif key in seen:
                    results[index] = PostResult(message=seen[key], created=False, routed=conversation.routed_at is not None)
                else:
                    seen[key] = new[index] = Message(
                        conversation=conversation, sender=Message.Sender.CUSTOMER, text=text, client_id=client_id
                    )
            Message.objects.bulk_create(new.values())
            _touch_many([locked[m.conversation_id] for m in new.values()])
            events = {index: _message_events(locked[m.conversation_id], m) for index, m in new.items()}
            transaction.on_commit(lambda: _deliver_all(outboxes, events))
            for index, message in new.items():
                routed = locked[message.conversation_id].routed_at is not None
                results[index] = PostResult(message=message, created=True, routed=routed)
    finally:
        for outbox in outboxes.values():
            outbox.open = False
    return {index: (results[index], outboxes[index].events) for index in cleaned}


def _deliver_all(outboxes: dict[int, Outbox], events: dict[int, Events]) -> None:
    """Each committed message's broadcasts into its own outbox (sent at once if that one closed)."""
    for index, found in events.items():
        for group, event in found:
            _deliver(outboxes[index], group, event)


def _stored_by_client_id(locked: dict[int, Conversation], client_ids: list[str]) -> dict[tuple[int, str], Message]:
    rows = Message.objects.filter(conversation_id__in=list(locked), client_id__in=set(client_ids))
    return {(m.conversation_id, m.client_id): m for m in rows.select_related("author")}


def _touch_many(conversations: list[Conversation]) -> None:
    """``_touch`` for customer messages of many conversations: one UPDATE for the stale ones."""
    now = timezone.now()
    stale = {c.pk for c in conversations if (now - c.updated_at).total_seconds() >= UPDATED_AT_RESOLUTION_SECONDS}
    if stale:
        Conversation.objects.filter(pk__in=stale).update(updated_at=now)


@dataclass(frozen=True)
class RouteRequest:
    """A conversation waiting for routing: the router's prediction (None: no model) and the message."""

    conversation_id: int
    prediction: PredictionLike | None
    message: Message | None = None


def conversations_route(*, requests: list[RouteRequest]) -> list[Conversation | None]:
    """Put each conversation in its team's inbox (confident prediction) or the triage queue.

    Routing happens once: a conversation already routed (a resend racing the first routing, or
    twice in one batch) is returned unchanged. Returns the conversations in request order (None
    for one deleted meanwhile).
    """
    with transaction.atomic():
        locked = {c.pk: c for c in conversations_lock(sorted({r.conversation_id for r in requests}))}
        fresh: dict[int, RouteRequest] = {}
        for request in requests:  # the first request for a conversation wins
            conversation = locked.get(request.conversation_id)
            if conversation is not None and conversation.routed_at is None:
                fresh.setdefault(request.conversation_id, request)
        if fresh:
            _route(locked, list(fresh.values()))
    return [locked.get(r.conversation_id) for r in requests]


def _route(locked: dict[int, Conversation], requests: list[RouteRequest]) -> None:
    predictions = [r.prediction for r in requests if r.prediction is not None]
    teams = {t.slug: t for t in Team.objects.filter(slug__in={p.team for p in predictions})}
    wanted = {int(p.model_version) for p in predictions if str(p.model_version).isdecimal()}
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in=wanted)}
    now, routed, routing_events = timezone.now(), [], []
    for request in requests:
        conversation, prediction = locked[request.conversation_id], request.prediction
        predicted = teams.get(prediction.team) if prediction else None
        confident = predicted is not None and predicted.active and not prediction.triage
        conversation.team = predicted if confident else None
        conversation.predicted_team = predicted
        conversation.confidence = prediction.confidence if prediction else None
        version = str(prediction.model_version) if prediction else ""
        conversation.model_version = versions.get(int(version)) if version.isdecimal() else None
        conversation.routed_at = conversation.updated_at = now
        routed.append(conversation)
        routing_events.append(RoutingEvent(
            conversation=conversation, message=request.message, model_version=conversation.model_version,
            team=predicted, confidence=conversation.confidence, triage=not confident,
        ))
    _routed_save(routed, now)
    RoutingEvent.objects.bulk_create(routing_events)
    histories = _histories([c.pk for c in routed])
    for conversation in routed:
        messages, first_text = histories[conversation.pk]
        for group, event in _assignment_events(conversation, messages, first_text):
            broadcast_on_commit(group, event)


def _routed_save(routed: list[Conversation], now) -> None:
    """One UPDATE for the whole batch, each row's values joined in from a VALUES list.

    Django's ``update()`` sets one value per column per statement, so a batch spread over the
    teams cost a statement (a round trip under the row locks) per (team, prediction, version);
    at 500 sockets those round trips, not their CPU, were most of the routing transaction's
    wall time. UPDATE ... FROM (VALUES ...) is PostgreSQL's and SQLite's (3.33+); both name the
    VALUES columns column1, column2, ...; the casts type the NULLs. Other databases (an SQLite
    older than 3.33) get the per-group statements.
    """
    if not _update_from_values():
        _routed_save_grouped(routed, now)
        return
    meta = Conversation._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ("team", "predicted_team", "model_version", "confidence", "routed_at", "updated_at")
    column = {name: quote(meta.get_field(name).column) for name in names}
    pk = quote(meta.pk.column)
    row = "(CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS double precision))"
    stamp = connection.ops.adapt_datetimefield_value(now)
    params: list[Any] = [stamp, stamp]
    for c in routed:
        params += [c.pk, c.team_id, c.predicted_team_id, c.model_version_id, c.confidence]
    sql = (
        f"UPDATE {table} SET {column['team']} = v.column2, {column['predicted_team']} = v.column3, "
        f"{column['model_version']} = v.column4, {column['confidence']} = v.column5, "
        f"{column['routed_at']} = %s, {column['updated_at']} = %s "
        f"FROM (VALUES {', '.join([row] * len(routed))}) AS v WHERE {table}.{pk} = v.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _update_from_values() -> bool:
    """Whether this database runs UPDATE ... FROM (VALUES ...): PostgreSQL, SQLite 3.33+."""
    if connection.vendor == "sqlite":
        return connection.Database.sqlite_version_info >= (3, 33, 0)
    return connection.vendor == "postgresql"


def _routed_save_grouped(routed: list[Conversation], now) -> None:
    """Elsewhere (an older SQLite): one UPDATE per (team, prediction, version), confidences by CASE."""
    groups: dict[tuple, list[Conversation]] = defaultdict(list)
    for c in routed:
        groups[(c.team_id, c.predicted_team_id, c.model_version_id)].append(c)
    for (team_id, predicted_id, version_id), members in groups.items():
        # Cast: with no model every confidence is NULL, and PostgreSQL types an all-NULL CASE as text.
        confidence = Cast(
            Case(*[When(pk=c.pk, then=Value(c.confidence)) for c in members], output_field=FloatField()),
            output_field=FloatField(),
        )
        Conversation.objects.filter(pk__in=[c.pk for c in members]).update(
            team_id=team_id, predicted_team_id=predicted_id, model_version_id=version_id,
            confidence=confidence, routed_at=now, updated_at=now,
        )


def _histories(conversation_ids: list[int]) -> dict[int, tuple[list[dict[str, Any]], str]]:
    """Per conversation, in one query: its last HISTORY_LIMIT messages (payloads, oldest first)
    and the customer's first text."""
    found: dict[int, list[Message]] = defaultdict(list)
    rows = Message.objects.filter(conversation_id__in=conversation_ids).select_related("author").order_by("id")
    for message in rows:
        found[message.conversation_id].append(message)
    histories = {}
    for pk in conversation_ids:
        first = next((m.text for m in found[pk] if m.sender == Message.Sender.CUSTOMER), "")
        payloads = [selectors.message_payload(message=m) for m in found[pk][-selectors.HISTORY_LIMIT :]]
        histories[pk] = (payloads, first)
    return histories
