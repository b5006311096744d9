"""Label next: which unlabelled ticket teaches the model most, and recording the answer.

The selection maths is finetune.ml.selection; this module scores pending tickets with the
serving model (cached per version) and records the agent's answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from finetune.ml.selection import score_margins, select_uncertain, text_features

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from finetune.models import Ticket

logger = logging.getLogger(__name__)

# Unscored tickets (oldest first) the model scores per page view; scores are cached per version.
SCORE_BATCH = 200
# Most-uncertain scored tickets the near-duplicate spreading chooses among.
CANDIDATES = 50


@dataclass(frozen=True)
class TicketScore:
    # None: the text cannot be routed (empty or too long); margin 0 puts it up front to be excluded.
    team: str | None
    confidence: float
    margin: float


@dataclass(frozen=True)
class LabelSuggestion:
    ticket: Ticket
    # The current model's guess; None when no model serves (tickets then come in arrival order).
    score: TicketScore | None
    model_version: str | None
    remaining: int


class _ScoreCache:
    """Calibrated scores per ticket for one model version; a new version starts afresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._scores: dict[int, TicketScore] = {}

    def get(self, version: str) -> dict[int, TicketScore]:
        with self._lock:
            if version != self._version:
                self._version, self._scores = version, {}
            return dict(self._scores)

    def put(self, version: str, scores: dict[int, TicketScore]) -> None:
        with self._lock:
            if version != self._version:
                self._version, self._scores = version, {}
            self._scores.update(scores)

    def clear(self) -> None:
        with self._lock:
            self._version, self._scores = None, {}


score_cache = _ScoreCache()


def _score_batch(version: str, texts: dict[int, str]) -> tuple[str, dict[int, TicketScore]]:
    from chatbot.core.errors import SwitchboardError
    from chatbot.core.text import ticket_text_validate
    from routing.router import get_router

    scores, routable = {}, {}
    for pk, text in texts.items():
        try:
            routable[pk] = ticket_text_validate(text=text)
        except SwitchboardError:
            scores[pk] = TicketScore(team=None, confidence=0.0, margin=0.0)
    if not routable:
        return version, scores
    predictions = get_router().predict(list(routable.values()))
    for pk, prediction in zip(routable, predictions):
        margin = float(score_margins(np.array([list(prediction.scores.values())]))[0])
        scores[pk] = TicketScore(team=prediction.team, confidence=prediction.confidence, margin=margin)
    return predictions[0].model_version, scores


def _scores_for(*, version: str, pending: list[int]) -> dict[int, TicketScore]:
    """Cached scores of ``pending`` tickets, after scoring up to SCORE_BATCH unscored ones."""
    from finetune.models import Ticket

    cached = score_cache.get(version)
    unscored = [pk for pk in pending if pk not in cached][:SCORE_BATCH]
    if unscored:
        texts = dict(Ticket.objects.filter(pk__in=unscored).values_list("pk", "text"))
        served, fresh = _score_batch(version, texts)
        score_cache.put(served, fresh)
        if served != version:  # the router moved on between our check and its answer
            return fresh
        cached.update(fresh)
    return {pk: cached[pk] for pk in pending if pk in cached}


def _most_informative(scores: dict[int, TicketScore], last_shown_id: int | None) -> int:
    from finetune.models import Ticket

    ranked = sorted(scores, key=lambda pk: (scores[pk].margin, pk))[:CANDIDATES]
    wanted = ranked + ([last_shown_id] if last_shown_id else [])
    texts = dict(Ticket.objects.filter(pk__in=wanted).values_list("pk", "text"))
    features = text_features([texts[pk] for pk in ranked] + [texts.get(last_shown_id, "")])
    avoid = features[len(ranked) :] if last_shown_id in texts else None
    margins = np.array([scores[pk].margin for pk in ranked])
    return ranked[select_uncertain(margins=margins, features=features[: len(ranked)], count=1, avoid=avoid)[0]]


def label_next_pick(*, skipped: Collection[int] = (), last_shown_id: int | None = None) -> LabelSuggestion | None:
    """The unlabelled ticket to show next (None when there is none left), with the model's guess.

    Lowest margin first among the scored tickets, never a near-duplicate of ``last_shown_id``;
    in arrival order when no model serves.
    """
    from chatbot.core.errors import SwitchboardError
    from finetune.models import Ticket
    from routing.models import ModelVersion

    skipped = set(skipped)
    ids = (
        Ticket.objects.filter(team__isnull=True, no_intent=False, excluded=False)
        .order_by("id")
        .values_list("id", flat=True)
    )
    pending = [pk for pk in ids if pk not in skipped]
    if not pending:
        return None
    active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).values_list("pk", flat=True).first()
    scores: dict[int, TicketScore] = {}
    if active is not None:
        try:
            scores = _scores_for(version=str(active), pending=pending)
        except SwitchboardError as exc:  # NoModelError, or a version that cannot serve
            logger.warning("label next: cannot score with the model (%s); arrival order", exc.message)
    chosen = _most_informative(scores, last_shown_id) if scores else pending[0]
    return LabelSuggestion(
        ticket=Ticket.objects.get(pk=chosen),
        score=scores.get(chosen),
        model_version=str(active) if scores else None,
        remaining=len(pending),
    )


def _ticket_get(ticket_id: int) -> Ticket:
    from chatbot.core.errors import NotFoundError
    from finetune.models import Ticket

    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        raise NotFoundError(f"No ticket {ticket_id}: it may have been deleted; open label next again.")
    return ticket


def ticket_label_one(*, ticket_id: int, team_slug: str, user: AbstractBaseUser) -> Ticket:
    """Label one ticket with a team (records who and when)."""
    from finetune.models import Ticket
    from finetune.services import tickets_label
    from routing.selectors import team_get_by_slug

    ticket = _ticket_get(ticket_id)
    team = team_get_by_slug(slug=team_slug)
    tickets_label(tickets=Ticket.objects.filter(pk=ticket.pk), team=team, user=user)
    ticket.refresh_from_db()
    return ticket


def ticket_exclude_one(*, ticket_id: int) -> Ticket:
    """Mark one ticket as junk: it is never shown again nor used for training."""
    from finetune.models import Ticket
    from finetune.services import tickets_set_excluded

    ticket = _ticket_get(ticket_id)
    tickets_set_excluded(tickets=Ticket.objects.filter(pk=ticket.pk), excluded=True)
    ticket.refresh_from_db()
    return ticket
