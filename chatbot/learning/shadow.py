"""Shadow mode: a candidate scores live traffic beside the active model without routing anything.

``shadow_score`` is called by the chat right after a conversation is routed. It writes one
RoutingEvent(shadow=True) per scored message and never raises: a broken shadow model is logged
and skipped, the customer and the routing never notice. ``shadow_report`` compares the two
models on the same conversations, using agent corrections as ground truth.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db.models import Subquery

from chatbot.core.conf import setting
from chatbot.core.text import ticket_text_validate
from chatbot.models import Conversation, RoutingEvent
from finetune.models import Ticket
from routing.loaded_model import LoadedModel
from routing.model_loading import ModelLoader
from routing.models import ModelVersion, Team
from routing.teams import team_directory

logger = logging.getLogger(__name__)

CORRECTION_PREFIX = "conversation-"


class _ShadowModelCache:
    """This process's open shadow model, reloaded when the shadow version (id, sha256) changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, str] | None = None
        self._model: LoadedModel | None = None
        self._loader = ModelLoader("shadow: not scoring with")

    def get(self, version: ModelVersion) -> LoadedModel | None:
        key = (version.pk, version.sha256)
        with self._lock:
            if key == self._key:
                return self._model
            model = self._loader.load(version)
            if model is not None:
                self._key, self._model = key, model
            return model

    def clear(self) -> None:
        with self._lock:
            self._key, self._model = None, None
            self._loader.clear()


shadow_models = _ShadowModelCache()


def _score(*, conversation_id: int, message_id: int | None, text: str) -> RoutingEvent | None:
    version = ModelVersion.objects.filter(state=ModelVersion.State.SHADOW).first()
    if version is None:
        return None
    model = shadow_models.get(version)
    if model is None:
        return None
    cleaned = ticket_text_validate(text=text)
    prediction = model.predict([cleaned], teams=team_directory(), default_threshold=float(setting("TRIAGE_THRESHOLD")))[
        0
    ]
    return RoutingEvent.objects.create(
        conversation_id=conversation_id,
        message_id=message_id,
        model_version=version,
        shadow=True,
        team=Team.objects.filter(slug=prediction.team).first(),
        confidence=prediction.confidence,
        triage=prediction.triage,
    )


def shadow_score(*, conversation_id: int, message_id: int | None, text: str) -> None:
    """Score ``text`` with the shadow version, if any, and record it. Never raises."""
    try:
        _score(conversation_id=conversation_id, message_id=message_id, text=text)
    except Exception:  # the chat must never fail because of an experiment
        logger.exception("shadow: scoring conversation %s failed; routing is unaffected", conversation_id)


async def ashadow_score(*, conversation_id: int, message_id: int | None, text: str) -> None:
    """``shadow_score`` on a worker thread, so inference never blocks the event loop. Never raises."""
    await sync_to_async(shadow_score, thread_sensitive=False)(
        conversation_id=conversation_id, message_id=message_id, text=text
    )


@dataclass(frozen=True)
class TeamComparison:
    """Conversations whose true team is ``team``, and how often each model guessed it."""

    team: str
    count: int
    active_correct: int
    shadow_correct: int

    @property
    def active_accuracy(self) -> float:
        return self.active_correct / self.count

    @property
    def shadow_accuracy(self) -> float:
        return self.shadow_correct / self.count

    @property
    def difference(self) -> float:
        return self.shadow_accuracy - self.active_accuracy


@dataclass(frozen=True)
class ShadowReport:
    version: ModelVersion
    # Start of the shadow period (None once shadowing stopped: then every shadow score counts).
    since: datetime | None
    scored: int
    # Conversations both models decided on; agreement = same team, or both sent to triage.
    compared: int
    agreed: int
    active_triaged: int
    shadow_triaged: int
    # Of the compared: conversations an agent later corrected or assigned out of triage.
    labelled: int
    active_correct: int
    shadow_correct: int
    per_team: list[TeamComparison] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    @property
    def active_accuracy(self) -> float | None:
        return self.active_correct / self.labelled if self.labelled else None

    @property
    def shadow_accuracy(self) -> float | None:
        return self.shadow_correct / self.labelled if self.labelled else None


Decision = tuple[int | None, bool]  # (top team id, sent to triage)


def _final_decisions(events) -> dict[int, Decision]:
    """Per conversation, its last decision: where the conversation ended up, not its first message."""
    decisions: dict[int, Decision] = {}
    for conversation_id, team_id, triage in events.order_by("-id").values_list("conversation_id", "team_id", "triage"):
        decisions.setdefault(conversation_id, (team_id, triage))
    return decisions


def _ground_truth(conversation_ids: set[int], active: dict[int, Decision]) -> dict[int, int]:
    """Conversation -> true team id: its correction ticket, else the team an agent took it to from triage."""
    truth: dict[int, int] = {}
    corrections = Ticket.objects.filter(
        source=Ticket.Source.CORRECTION, team__isnull=False, external_id__startswith=CORRECTION_PREFIX
    ).values_list("external_id", "team_id")
    for external_id, team_id in corrections:
        suffix = external_id.removeprefix(CORRECTION_PREFIX)
        if suffix.isdecimal() and int(suffix) in conversation_ids:
            truth[int(suffix)] = team_id
    triaged = [pk for pk, (_, triage) in active.items() if triage and pk not in truth]
    assigned = Conversation.objects.filter(pk__in=triaged, team__isnull=False).values_list("pk", "team_id")
    truth.update(dict(assigned))
    return truth


def _per_team(truth: dict[int, int], active: dict[int, Decision], shadow: dict[int, Decision]) -> list[TeamComparison]:
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for conversation_id, team_id in truth.items():
        tally = tallies[team_id]
        tally[0] += 1
        tally[1] += active[conversation_id][0] == team_id
        tally[2] += shadow[conversation_id][0] == team_id
    names = Team.objects.in_bulk(list(tallies))
    rows = [
        TeamComparison(
            team=names[pk].name if pk in names else f"team {pk}", count=c, active_correct=a, shadow_correct=s
        )
        for pk, (c, a, s) in tallies.items()
    ]
    return sorted(rows, key=lambda row: (-row.count, row.team))


def shadow_report(*, version: ModelVersion) -> ShadowReport:
    """How the shadow version did against the active model on the same live conversations."""
    scored = RoutingEvent.objects.filter(shadow=True, model_version=version)
    if version.shadow_since is not None:
        scored = scored.filter(created_at__gte=version.shadow_since)
    shadow = _final_decisions(scored)
    live = RoutingEvent.objects.filter(shadow=False, conversation_id__in=Subquery(scored.values("conversation_id")))
    active = {pk: decision for pk, decision in _final_decisions(live).items() if pk in shadow}
    shadow = {pk: shadow[pk] for pk in active}
    truth = _ground_truth(set(active), active)
    return ShadowReport(
        version=version,
        since=version.shadow_since,
        scored=scored.count(),
        compared=len(active),
        agreed=sum(_final(active[pk]) == _final(shadow[pk]) for pk in active),
        active_triaged=sum(triage for _, triage in active.values()),
        shadow_triaged=sum(triage for _, triage in shadow.values()),
        labelled=len(truth),
        active_correct=sum(active[pk][0] == team for pk, team in truth.items()),
        shadow_correct=sum(shadow[pk][0] == team for pk, team in truth.items()),
        per_team=_per_team(truth, active, shadow),
    )


def _final(decision: Decision) -> int | None:
    """Where the conversation went: the team, or None for the triage queue."""
    team_id, triage = decision
    return None if triage else team_id


def shadow_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(state=ModelVersion.State.SHADOW).first()
