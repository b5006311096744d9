"""The per-process router: serves the active model version and swaps to a new one without a restart.

Every ``ROUTER_RELOAD_SECONDS`` one caller checks which version is active (one indexed query)
and reloads the team directory. A new version is loaded beside the old one and published by
replacing one reference; each request reads that reference exactly once, so it is answered
wholly by the old or wholly by the new version. A version that fails verification is
remembered by (id, sha256) and not retried; the previous model keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

from asgiref.sync import sync_to_async
from django.db import DatabaseError

from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.core.errors import NoModelError, SwitchboardError
from chatbot.core.logs import log_bound
from chatbot.core.text import ticket_text_validate
from routing.loaded_model import LoadedModel, Prediction, TeamInfo
from routing.model_loading import ModelLoader, ServedFilesCheck, VersionKey
from routing.models import ModelVersion
from routing.teams import team_directory

logger = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "No model has been trained yet: train one in the admin or with `manage.py train`."


@dataclass(frozen=True)
class RouterState:
    """What one request sees: the model serving, the team directory, and what the DB says is active."""

    model: LoadedModel | None
    teams: Mapping[str, TeamInfo] = field(default_factory=dict)
    active: VersionKey | None = None
    problem: str | None = None


def texts_validate(texts: list[str], *, field: str | None = None) -> list[str]:
    """Clean each text; refuse empty ones and any over MAX_TEXT_CHARS (longer token runs are truncated).

    A refusal names the text as ``field[i]`` (``texts[i]`` when several come without a field name)
    and keeps the text's own status (413 for too long).
    """
    if not texts:
        raise SwitchboardError(f"{field or 'texts'} is empty: send at least one message.", code="empty_batch")
    if len(texts) == 1 and field is None:
        return [ticket_text_validate(text=texts[0])]
    cleaned = []
    for index, text in enumerate(texts):
        try:
            cleaned.append(ticket_text_validate(text=text))
        except SwitchboardError as exc:
            message = f"{field or 'texts'}[{index}]: {exc.message}"
            raise SwitchboardError(message, code=exc.code, http_status=exc.http_status) from exc
    return cleaned


class Router:
    def __init__(self) -> None:
        self._state = RouterState(model=None)
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._loader = ModelLoader("router: refusing")
        self._served_files = ServedFilesCheck()

    def predict(self, texts: list[str], *, field: str | None = None) -> list[Prediction]:
        """Route a batch; all of it is answered by one model version (``field``: see texts_validate)."""
        cleaned = texts_validate(texts, field=field)
        state = self.state()
        if state.model is None:
            raise NoModelError(_no_model_message(state))
        return state.model.predict(cleaned, teams=state.teams, default_threshold=float(setting("TRIAGE_THRESHOLD")))

    async def apredict(self, texts: list[str]) -> list[Prediction]:
        """``predict`` on a worker thread: inference and its DB check never block the event loop."""
        return await sync_to_async(self.predict, thread_sensitive=False)(texts)

    def state(self) -> RouterState:
        """The current state, refreshed first when the reload interval has passed."""
        # Also while no model serves: a burst of first messages must not queue on the DB check;
        # the first model is picked up within the same interval as any promotion.
        if time.monotonic() - self._checked_at >= float(setting("ROUTER_RELOAD_SECONDS")):
            self._refresh()
        return self._state

    def health(self) -> dict:
        """no_model; degraded (an older version serves, or the served version's files no longer verify); ok."""
        state = self.state()
        serving = state.model.version if state.model else None
        active = str(state.active[0]) if state.active else None
        problem = state.problem
        if serving is None:
            status = "no_model"
        elif serving != active:
            status = "degraded"
        else:
            problem = self._served_files.problem(state.model)
            status = "ok" if problem is None else "degraded"
        return {"status": status, "serving_version": serving, "active_version": active, "problem": problem}

    def _refresh(self) -> None:
        # Only one thread checks at a time; the others keep serving the current model
        # unless there is none yet, in which case they wait for the first load.
        if not self._lock.acquire(blocking=self._state.model is None):
            return
        try:
            self._checked_at = time.monotonic()
            self._state = state = self._next_state(self._state)
            metrics.model_versions_set(
                serving=state.model.version if state.model else None,
                active=str(state.active[0]) if state.active else None,
            )
        except DatabaseError:
            if self._state.model is None:
                raise
            logger.exception("router: reload check failed; still serving version %s", self._state.model.version)
        finally:
            self._lock.release()

    def _next_state(self, current: RouterState) -> RouterState:
        row = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).values_list("pk", "sha256").first()
        teams = team_directory()
        if row is None:
            return RouterState(model=None, teams=teams, problem=NO_MODEL_MESSAGE)
        active: VersionKey = (row[0], row[1])
        model = current.model
        if model is None or (model.version, model.sha256) != (str(active[0]), active[1]):
            model = self._load(active) or model
        return RouterState(model=model, teams=teams, active=active, problem=self._loader.refusal(active))

    def _load(self, key: VersionKey) -> LoadedModel | None:
        if self._loader.refusal(key) is not None:
            return None
        version = ModelVersion.objects.filter(pk=key[0], sha256=key[1]).first()
        if version is None:  # changed between the two queries; the next check sees the new row
            return None
        with log_bound(model_version=str(version.pk)):
            model = self._loader.load(version)
            if model is not None:
                logger.info("router: now serving model version %s", model.version)
        return model


def _no_model_message(state: RouterState) -> str:
    if state.active is None:
        return NO_MODEL_MESSAGE
    return (
        f"The active model version {state.active[0]} cannot be served ({state.problem}); "
        "promote or roll back to a version whose files verify."
    )


_ROUTER = Router()


def get_router() -> Router:
    """This process's router (created at import, loads nothing until the first request)."""
    return _ROUTER
