"""Prediction.reason: format-1 artifacts answer routed/low_confidence; format 2 adds the open-world reasons."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import replace

import numpy as np
import pytest

from finetune.ml.artifact_format import NO_INTENT, OodCheck, Serving
from routing import loaded_model as loaded_module
from routing.loaded_model import LoadedModel, TeamInfo, language_check
from tests.routing.conftest import LABELS_V1

pytestmark = pytest.mark.django_db
Guess = namedtuple("Guess", "code confidence")
TEAMS = {slug: TeamInfo(name=slug.title(), triage_threshold=None) for slug in LABELS_V1}
LANGUAGES = {"counts": {"en": 100}, "supported": ["en"], "min_confidence": 0.9}


def test_format_1_artifacts_route_as_before_with_a_reason(router, teams, install_version, store):
    """An artifact of the release before (serving.json format 1: labels, temperature, threshold and
    nothing else) still serves: every answer routed or low_confidence, no language."""
    import json

    from finetune.ml.artifacts import write_checksums

    version = install_version("v1", state="active")
    directory = store / version.artifact_dir
    serving = json.loads((directory / "serving.json").read_text())
    old = {key: serving[key] for key in ("max_length", "temperature", "triage_threshold", "labels")}
    (directory / "serving.json").write_text(json.dumps({"format": 1, **old}))
    version.sha256 = write_checksums(directory)
    version.save()
    for prediction in router.predict(["refund my invoice charge", "error crash bug broken", "hi"]):
        assert prediction.language is None and prediction.team is not None
        assert prediction.reason == ("low_confidence" if prediction.triage else "routed")


@pytest.fixture
def open_model(install_version, monkeypatch):
    """The v1 model given a format-2 serving block: labels + no-intent, an OOD check, languages."""
    model = LoadedModel.from_version(install_version("v1"))
    labels = [*LABELS_V1, NO_INTENT]
    serving = Serving(
        2, 64, 1.0, 0.5, labels, NO_INTENT, OodCheck("centroid_cosine", 0.3, 0.95, np.eye(4, 8)), LANGUAGES
    )
    guesses = {"hola, mi tarjeta no funciona": Guess("es", 0.99), "ciao": Guess("it", 0.5)}
    monkeypatch.setattr(loaded_module, "language_check", lambda text, langs: language_check(text, langs, guesses.get))
    return replace(model, labels=tuple(labels), serving=serving)


@pytest.mark.parametrize(
    ("text", "row", "in_scope", "reason", "team"),
    [
        ("my card", [0.1, 0.8, 0.05, 0.05], 0.9, "routed", "billing"),
        ("my card", [0.2, 0.4, 0.3, 0.1], 0.9, "low_confidence", "billing"),
        ("hi", [0.1, 0.1, 0.1, 0.7], 0.9, "no_intent", None),
        ("hi", [0.1, 0.1, 0.1, 0.7], 0.1, "no_intent", None),  # no-intent beats out-of-scope
        ("book a taxi", [0.1, 0.8, 0.05, 0.05], 0.1, "out_of_scope", None),
        ("book a taxi", [0.2, 0.4, 0.3, 0.1], 0.1, "out_of_scope", None),  # out-of-scope beats low confidence
        ("hola, mi tarjeta no funciona", [0.1, 0.1, 0.1, 0.7], 0.1, "unsupported_language", None),
        ("ciao", [0.1, 0.8, 0.05, 0.05], 0.9, "routed", "billing"),  # an unsure guess falls back to the model
    ],
)
def test_reasons_and_their_precedence(open_model, text, row, in_scope, reason, team):
    prediction = open_model._decide(text, np.array(row), in_scope, TEAMS, 0.5)
    assert (prediction.reason, prediction.team) == (reason, team)
    assert prediction.triage == (reason in ("low_confidence", "out_of_scope", "unsupported_language"))
    assert set(prediction.scores) == set(LABELS_V1)
    assert prediction.confidence == (row[3] if reason == "no_intent" else max(row[:3]))
    assert prediction.language == ("es" if reason == "unsupported_language" else None)
    assert (prediction.team_name is None) == (team is None)


def test_an_inactive_team_is_low_confidence(open_model):
    teams = {**TEAMS, "billing": TeamInfo(name="Billing", triage_threshold=None, active=False)}
    prediction = open_model._decide("my card", np.array([0.1, 0.8, 0.05, 0.05]), 0.9, teams, 0.5)
    assert (prediction.reason, prediction.team, prediction.triage) == ("low_confidence", "billing", True)


def test_language_check_needs_a_confident_guess():
    assert language_check("x", None, lambda t: Guess("de", 1.0)) == (None, True)
    assert language_check("x", LANGUAGES, lambda t: None) == (None, True)
    assert language_check("x", LANGUAGES, lambda t: Guess("de", 0.5)) == (None, True)
    assert language_check("x", LANGUAGES, lambda t: Guess("de", 0.95)) == ("de", False)
    assert language_check("x", LANGUAGES, lambda t: Guess("en", 0.95)) == ("en", True)
