"""Fixtures for the learning loop: a scripted router, a real tiny artifact, ticket and event factories."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from chatbot.core.text import text_hash
from chatbot.learning.shadow import shadow_models
from chatbot.models import Conversation, RoutingEvent
from finetune.labelling import score_cache
from finetune.models import Ticket
from routing.loaded_model import Prediction
from routing.models import ModelVersion, Team
from tests.ml_fixtures import make_tiny_artifact


class ScriptedRouter:
    """Stands in for get_router(): each text's calibrated scores are given by the test."""

    def __init__(self, scores: dict[str, dict[str, float]], model_version: str) -> None:
        self.scores = scores
        self.model_version = model_version
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> Prediction:
        scores = self.scores.get(text, {"billing": 0.34, "accounts": 0.33, "bugs": 0.33})
        team = max(scores, key=scores.get)
        return Prediction(
            team=team,
            team_name=team.title(),
            confidence=scores[team],
            triage=scores[team] < 0.5,
            reason="low_confidence" if scores[team] < 0.5 else "routed",
            language=None,
            scores=scores,
            model_version=self.model_version,
        )


@pytest.fixture(autouse=True)
def _fresh_caches():
    score_cache.clear()
    shadow_models.clear()
    yield
    score_cache.clear()
    shadow_models.clear()


@pytest.fixture
def make_ticket(db) -> Callable[..., Ticket]:
    def make(text: str, **fields) -> Ticket:
        return Ticket.objects.create(text=text, text_hash=text_hash(text), **fields)

    return make


@pytest.fixture
def scripted_router(monkeypatch, db) -> Callable[[dict], ScriptedRouter]:
    """Install a ScriptedRouter and an active ModelVersion row for it."""

    def install(scores: dict[str, dict[str, float]]) -> ScriptedRouter:
        version = ModelVersion.objects.create(artifact_dir="scripted", sha256="0" * 64, state="active")
        router = ScriptedRouter(scores, model_version=str(version.pk))
        monkeypatch.setattr("routing.router.get_router", lambda: router)
        return router

    return install


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A real int8 ONNX artifact for the conftest teams, trained once per session."""
    return make_tiny_artifact(tmp_path_factory.mktemp("learning-artifacts"), ["accounts", "billing", "bugs"])


@pytest.fixture
def model_store(settings, tmp_path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    settings.SWITCHBOARD = {
        **getattr(settings, "SWITCHBOARD", {}),
        "MODEL_STORE": str(store),
        "ROUTER_RELOAD_SECONDS": 0,
    }
    return store


@pytest.fixture
def install_version(model_store, tiny_artifact) -> Callable[..., ModelVersion]:
    """Copy the tiny artifact into the store and register it: install_version(state="shadow")."""

    def install(*, state: str = ModelVersion.State.CANDIDATE, **fields) -> ModelVersion:
        version = ModelVersion.objects.create(
            artifact_dir="pending", sha256="", labels=["accounts", "billing", "bugs"], state=state, **fields
        )
        target = model_store / str(version.pk)
        shutil.copytree(tiny_artifact, target)
        version.artifact_dir = str(version.pk)
        version.sha256 = hashlib.sha256((target / "checksums").read_bytes()).hexdigest()
        version.save()
        return version

    return install


def routed(
    *,
    team: Team | None,
    triage: bool,
    version: ModelVersion | None,
    shadow: bool = False,
    conversation: Conversation | None = None,
    at: datetime | None = None,
) -> RoutingEvent:
    """One routing decision (a new conversation unless given), optionally back-dated."""
    conversation = conversation or Conversation.objects.create()
    event = RoutingEvent.objects.create(
        conversation=conversation, model_version=version, shadow=shadow, team=team, confidence=0.6, triage=triage
    )
    if at is not None:
        RoutingEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event
