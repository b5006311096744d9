"""Conversation routing writes: where a conversation belongs as its customer keeps writing.

A conversation is *waiting* (no inbox; agents see it in the waiting list) until its customer's
text carries an intent; then it goes to the confident team's inbox, or to triage. Until the
first agent reply, a later confident prediction for another team moves it (a routing event;
both inboxes and the customer are told). After that reply only people move it.

The consumers batch conversations with new customer messages: ``routing_inputs`` reads what the
router needs (the messages not yet scored, the earlier intent-carrying turns), the router scores
them outside any transaction, and ``conversations_route`` writes the decisions in one
transaction (rows locked in id order) and tells the inboxes after the commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from chatbot import selectors
from chatbot.broadcast import WAITING_GROUP, broadcast_on_commit, conversation_group, inbox_group
from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.models import Conversation, Message, RoutingEvent
from chatbot.services import assignment_broadcast, conversations_lock
from routing.conversation import FRAGMENT_TURNS, MAX_TURNS
from routing.models import ModelVersion, Team

NO_MODEL = "no_model"


class PredictionLike(Protocol):
    """What the router returns for one text (routing.loaded_model.Prediction)."""

    team: str | None
    confidence: float
    triage: bool
    reason: str
    language: str | None
    model_version: str


@dataclass(frozen=True)
class RoutingInput:
    """One conversation's texts to score: new customer messages (id, text), the earlier intent
    turns, and the newest customer turns whatever they scored (routing.conversation.fragments_text)."""

    conversation_id: int
    unscored: list[tuple[int, str]]
    earlier_turns: list[str]
    # The newest customer turns (id, text, carries an intent: None while unscored), oldest first.
    last_turns: list[tuple[int, str, bool | None]] = field(default_factory=list)


@dataclass(frozen=True)
class RouteRequest:
    """The router's answer for a conversation (None: no model) and how it scored each new message."""

    conversation_id: int
    prediction: PredictionLike | None
    scored: dict[int, bool] = field(default_factory=dict)


def routing_inputs(*, conversation_ids: list[int]) -> list[RoutingInput]:
    """What to score for conversations the model may still route (open, no agent reply yet)."""
    open_ids = set(
        Conversation.objects.filter(
            pk__in=conversation_ids, status=Conversation.Status.OPEN, agent_replied_at__isnull=True
        ).values_list("pk", flat=True)
    )
    customer = Message.objects.filter(conversation_id__in=open_ids, sender=Message.Sender.CUSTOMER)
    unscored: dict[int, list[tuple[int, str]]] = defaultdict(list)
    earlier: dict[int, list[str]] = defaultdict(list)
    every: dict[int, list[tuple[int, str, bool | None]]] = defaultdict(list)
    for pk, conversation_id, text, carries in customer.order_by("id").values_list(
        "pk", "conversation_id", "text", "carries_intent"
    ):
        every[conversation_id].append((pk, text, carries))
        if carries is None:
            unscored[conversation_id].append((pk, text))
        elif carries:
            earlier[conversation_id].append(text)
    return [
        RoutingInput(pk, unscored[pk][-MAX_TURNS:], earlier[pk][-MAX_TURNS:], every[pk][-FRAGMENT_TURNS:])
        for pk in conversation_ids
        if pk in open_ids and unscored[pk]
    ]


def conversations_route(*, requests: list[RouteRequest]) -> list[Conversation | None]:
    """Apply each conversation's routing decision; returns the conversations in request order."""
    with transaction.atomic():
        ids = sorted({r.conversation_id for r in requests})
        locked = {c.pk: c for c in conversations_lock(ids)}
        _scores_save(requests)
        counts = _customer_counts(ids)
        teams, versions = _lookups(requests)
        changed: list[tuple[Conversation, str | None, bool]] = []
        decisions: list[tuple[str, Conversation]] = []
        for request in requests:
            conversation = locked.get(request.conversation_id)
            if conversation is None or conversation.agent_replied_at or conversation.status != Conversation.Status.OPEN:
                continue
            outcome = _decide(conversation, request.prediction, teams, counts.get(conversation.pk, 0))
            if outcome is not None:
                announced = conversation.routed_at is not None or conversation.routing_reason
                old_group = inbox_group(conversation) if announced else None
                first_wait = outcome == "wait" and not conversation.routing_reason
                _apply(conversation, request.prediction, outcome, teams, versions)
                changed.append((conversation, old_group, first_wait))
                decisions.append((DECISION_OUTCOMES[outcome], conversation))
        _changes_save([c for c, _, _ in changed], requests)
        _changes_broadcast(changed)
    _decisions_count(decisions)
    return [locked.get(r.conversation_id) for r in requests]


# _decide's outcomes as the metrics name them.
DECISION_OUTCOMES = {"team": "routed", "triage": "triaged", "wait": "held_back"}


def _decisions_count(decisions: list[tuple[str, Conversation]]) -> None:
    """Counted once committed (a rolled-back batch raised before this)."""
    for outcome, conversation in decisions:
        team = conversation.team.slug if conversation.team_id else None
        metrics.conversation_decision(outcome=outcome, team=team, reason=conversation.routing_reason)


def _scores_save(requests: list[RouteRequest]) -> None:
    for value in (True, False):
        ids = [pk for r in requests for pk, carries in r.scored.items() if carries is value]
        if ids:
            # Only still unscored: a message an agent marked "not a request" meanwhile stays marked.
            Message.objects.filter(pk__in=ids, carries_intent__isnull=True).update(carries_intent=value)


def _customer_counts(ids: list[int]) -> dict[int, int]:
    rows = Message.objects.filter(conversation_id__in=ids, sender=Message.Sender.CUSTOMER)
    return dict(rows.values("conversation_id").annotate(n=Count("id")).values_list("conversation_id", "n"))


def _lookups(requests: list[RouteRequest]) -> tuple[dict[str, Team], dict[int, ModelVersion]]:
    predictions = [r.prediction for r in requests if r.prediction is not None]
    teams = {t.slug: t for t in Team.objects.filter(slug__in={p.team for p in predictions if p.team})}
    wanted = {int(p.model_version) for p in predictions if str(p.model_version).isdecimal()}
    return teams, ModelVersion.objects.in_bulk(wanted)


def _decide(conversation: Conversation, prediction, teams: dict[str, Team], customer_messages: int) -> str | None:
    """ "team" (to the predicted team), "triage", "wait" (stay waiting, noted) or None (unchanged)."""
    waiting = conversation.routed_at is None
    if prediction is not None and prediction.reason == "routed":
        team = teams.get(prediction.team)
        if team is not None and team.active and (waiting or conversation.team_id != team.pk):
            return "team"
        return None if not waiting else "triage"
    if not waiting:
        return None  # unsure, off topic or no intent: where a person or a confident answer put it
    if prediction is not None and prediction.reason == "no_intent":
        if customer_messages >= int(setting("WAITING_MAX_MESSAGES")):
            return "triage"
        return "wait" if not conversation.routing_reason else None
    return "triage"


def _apply(conversation: Conversation, prediction, outcome: str, teams, versions) -> None:
    now = timezone.now()
    conversation.routing_reason = prediction.reason if prediction is not None else NO_MODEL
    conversation.language = (prediction.language or "") if prediction is not None else ""
    if outcome == "wait":
        return
    conversation.team = teams.get(prediction.team) if outcome == "team" else None
    conversation.predicted_team = teams.get(prediction.team) if prediction is not None and prediction.team else None
    conversation.confidence = prediction.confidence if prediction is not None else None
    version = str(prediction.model_version) if prediction is not None else ""
    conversation.model_version = versions.get(int(version)) if version.isdecimal() else None
    conversation.routed_at = conversation.routed_at or now
    conversation.updated_at = now


def _changes_save(changed: list[Conversation], requests: list[RouteRequest]) -> None:
    if not changed:
        return
    fields = [
        "team",
        "predicted_team",
        "confidence",
        "model_version",
        "routed_at",
        "routing_reason",
        "language",
        "updated_at",
    ]
    _rows_update(changed, fields)
    RoutingEvent.objects.bulk_create(
        [
            RoutingEvent(
                conversation=c,
                model_version=c.model_version,
                team=c.predicted_team,
                confidence=c.confidence,
                triage=c.routed_at is not None and c.team_id is None,
                reason=c.routing_reason,
                language=c.language,
                message_id=_last_scored(requests, c.pk),
            )
            for c in changed
        ]
    )


def _rows_update(rows: list[Conversation], names: list[str]) -> None:
    """These conversations' fields saved in one UPDATE ... FROM (VALUES ...).

    Django's ``bulk_update`` builds a CASE of one WHEN per row for every field, in Python: a third
    of the database threads' CPU when 500 new conversations are routed a second (docs/benchmarks.md,
    live chat round 11). PostgreSQL and SQLite 3.33+ run this form and name the VALUES columns
    column1, column2, ...; PostgreSQL gets casts, which type the NULLs. Other databases: bulk_update.
    """
    from_values = connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 33, 0)
    )
    if not from_values:
        Conversation.objects.bulk_update(rows, names)
        return
    meta = Conversation._meta
    fields = [meta.get_field(name) for name in names]
    quote = connection.ops.quote_name

    def slot(field) -> str:
        return f"CAST(%s AS {field.cast_db_type(connection)})" if connection.vendor == "postgresql" else "%s"

    row = "(" + ", ".join(slot(field) for field in [meta.pk, *fields]) + ")"
    params: list[Any] = []
    for conversation in rows:
        params.append(conversation.pk)
        params += [field.get_db_prep_save(getattr(conversation, field.attname), connection) for field in fields]
    table = quote(meta.db_table)
    assignments = ", ".join(f"{quote(field.column)} = v.column{index}" for index, field in enumerate(fields, 2))
    values = ", ".join([row] * len(rows))
    sql = f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v WHERE {table}.{quote(meta.pk.column)} = v.column1"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _last_scored(requests: list[RouteRequest], conversation_id: int) -> int | None:
    scored = [pk for r in requests if r.conversation_id == conversation_id for pk in r.scored]
    return max(scored) if scored else None


def _changes_broadcast(changed: list[tuple[Conversation, str | None, bool]]) -> None:
    if not changed:
        return
    histories = _histories([c.pk for c, _, _ in changed])
    for conversation, old_group, first_wait in changed:
        messages, first_text = histories[conversation.pk]
        summary = selectors.conversation_summary(conversation=conversation, first_text=first_text)
        if first_wait:
            broadcast_on_commit(
                WAITING_GROUP, {"type": "conversation.waiting", "conversation": summary, "messages": messages}
            )
            continue
        if old_group is not None and old_group != inbox_group(conversation):
            broadcast_on_commit(old_group, {"type": "conversation.updated", "conversation": summary})
        if old_group != inbox_group(conversation):
            assignment_broadcast(conversation, messages, first_text)


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


def conversations_triage_waiting(*, older_than_seconds: float) -> int:
    """Waiting conversations older than this go to triage (the periodic job); returns how many."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = (
        Conversation.objects.filter(
            status=Conversation.Status.OPEN, routed_at__isnull=True, created_at__lt=cutoff, messages__isnull=False
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    ids = list(stale[:500])
    with transaction.atomic():
        changed = []
        for conversation in conversations_lock(ids):
            if conversation.routed_at is None and conversation.status == Conversation.Status.OPEN:
                old_group = WAITING_GROUP if conversation.routing_reason else None
                conversation.routing_reason = conversation.routing_reason or "no_intent"
                conversation.routed_at = conversation.updated_at = timezone.now()
                changed.append((conversation, old_group, False))
        _changes_save([c for c, _, _ in changed], [])
        _changes_broadcast(changed)
    _decisions_count([("triaged", conversation) for conversation, _, _ in changed])
    return len(changed)


def reevaluation_turns(*, conversation_id: int) -> list[str] | None:
    """The intent-carrying turns (oldest first, the newest MAX_TURNS) of a conversation the model
    still places (open, no agent reply), after an agent marked one of them "not a request"; else None."""
    routable = Conversation.objects.filter(
        pk=conversation_id, status=Conversation.Status.OPEN, agent_replied_at__isnull=True
    ).exists()
    if not routable:
        return None
    turns = Message.objects.filter(conversation_id=conversation_id, sender=Message.Sender.CUSTOMER, carries_intent=True)
    return list(reversed(turns.order_by("-id").values_list("text", flat=True)[:MAX_TURNS]))


def conversation_unroute(*, conversation_id: int) -> bool:
    """Back to waiting: a routed conversation none of whose turns carries an intent any more (an
    agent marked the one it was routed on "not a request"), as if the model had read it right.

    Its inbox and the customer are told; the waiting limits (counted from its start) apply again.
    Returns whether it moved.
    """
    with transaction.atomic():
        rows = conversations_lock([conversation_id])
        conversation = rows[0] if rows else None
        if conversation is None or conversation.routed_at is None or conversation.agent_replied_at:
            return False
        still = conversation.messages.filter(sender=Message.Sender.CUSTOMER, carries_intent=True).exists()
        if still or conversation.status != Conversation.Status.OPEN:
            return False
        old_group = inbox_group(conversation)
        conversation.team = conversation.predicted_team = conversation.model_version = None
        conversation.confidence, conversation.routed_at = None, None
        conversation.routing_reason, conversation.updated_at = "no_intent", timezone.now()
        _changes_save([conversation], [])
        messages, first_text = _histories([conversation.pk])[conversation.pk]
        summary = selectors.conversation_summary(conversation=conversation, first_text=first_text)
        broadcast_on_commit(old_group, {"type": "conversation.updated", "conversation": summary})
        broadcast_on_commit(
            WAITING_GROUP, {"type": "conversation.waiting", "conversation": summary, "messages": messages}
        )
        routed = {"type": "chat.routed", **selectors.conversation_team_payload(conversation=conversation)}
        broadcast_on_commit(conversation_group(conversation.pk), routed)
    return True
