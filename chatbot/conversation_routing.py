"""Routing writes: put conversations into their team's inbox or the triage queue, a batch at a time.

The consumers batch the conversations waiting for routing (chatbot.ws_base) and call
``conversations_route`` with the router's predictions: one transaction, rows locked in id order,
one UPDATE for the whole batch, and the inboxes told after the commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection, transaction
from django.db.models import Case, FloatField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from chatbot import selectors
from chatbot.models import Conversation, Message, RoutingEvent
from chatbot.services import assignment_broadcast, conversations_lock
from routing.models import ModelVersion, Team


class PredictionLike(Protocol):
    """What the router returns for one text (routing.loaded_model.Prediction)."""

    team: str
    confidence: float
    triage: bool
    model_version: str


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
        assignment_broadcast(conversation, messages, first_text)


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
