"""A text held back whole (unsure, out of scope, no intent) is read again from its sentences that carry a request."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from finetune.ml.artifact_format import NO_INTENT, OodCheck, Serving
from routing import loaded_model as loaded_module
from routing.loaded_model import LoadedModel, Scored, TeamInfo
from tests.routing.conftest import LABELS_V1

pytestmark = pytest.mark.django_db
TEAMS = {slug: TeamInfo(name=slug.title(), triage_threshold=None) for slug in LABELS_V1}
# Rows over accounts, billing, bugs, no-intent; then the OOD check's in-scope score (threshold 0.3).
BILLING, BUGS, UNSURE = [0.05, 0.9, 0.03, 0.02], [0.05, 0.05, 0.88, 0.02], [0.3, 0.35, 0.3, 0.05]
GREETING = [0.05, 0.05, 0.05, 0.85]
SCRIPT = {
    "Hello team,": (GREETING, 0.9),
    "I have been a customer for years.": (BUGS, 0.1),  # out of scope alone
    "I was travelling last week.": (BILLING, 0.2),  # out of scope alone
    "My invoice is wrong.": (BILLING, 0.9),
    "It was charged twice.": (BILLING, 0.8),
    "My invoice is wrong. It was charged twice.": (BILLING, 0.9),
    "Can you look at it?": (UNSURE, 0.9),  # low confidence alone
    "Please book me a taxi.": (BUGS, 0.05),
    "My app crashes.": (BUGS, 0.9),
    "I have been a customer for years. My invoice is wrong.": (UNSURE, 0.9),  # unsure whole
}


@pytest.fixture
def calls() -> list[list[str]]:
    """The batches the model scored, in order."""
    return []


@pytest.fixture
def model(install_version, monkeypatch, calls):
    """The v1 model with a format-2 serving block (no-intent label, OOD check), scoring by SCRIPT
    (a text not in it scores as out of scope)."""
    base = LoadedModel.from_version(install_version("v1"))
    labels = (*LABELS_V1, NO_INTENT)
    serving = Serving(2, 64, 1.0, 0.5, list(labels), NO_INTENT, OodCheck("centroid_cosine", 0.3, 0.95, np.eye(4, 8)))

    def score(self, texts):
        calls.append(list(texts))
        rows = [SCRIPT.get(text, (BILLING, 0.05)) for text in texts]
        in_scope = None if self.serving.ood is None else np.array([in_scope for _, in_scope in rows])
        return Scored(np.array([row for row, _ in rows]), in_scope)

    monkeypatch.setattr(LoadedModel, "score", score)
    return replace(base, labels=labels, serving=serving)


def predict(model, texts):
    return model.predict(texts, teams=TEAMS, default_threshold=0.5)


def test_context_before_the_question_cannot_hold_it_back(model):
    """One sentence routes alone: its answer is the text's."""
    text = "Hello team,\nI have been a customer for years. I was travelling last week. My app crashes."
    [answer] = predict(model, [text])
    assert (answer.reason, answer.team, answer.triage) == ("routed", "bugs", False)


def test_an_unsure_text_takes_the_answer_of_its_request_sentence(model):
    [answer] = predict(model, ["I have been a customer for years. My invoice is wrong."])
    assert (answer.reason, answer.team, answer.triage) == ("routed", "billing", False)


def test_several_request_sentences_are_read_together(model, calls):
    text = "Hello team,\nMy invoice is wrong. I was travelling last week. It was charged twice."
    [answer] = predict(model, [text])
    assert (answer.reason, answer.team) == ("routed", "billing")
    assert calls[-1] == ["My invoice is wrong. It was charged twice."]


@pytest.mark.parametrize(
    "text",
    [
        "Hello team,\nPlease book me a taxi.",  # nothing routes alone: still out of scope
        "I was travelling last week. Can you look at it?",  # only a low-confidence sentence
        "Please book me a taxi.",  # one sentence: nothing to re-read
    ],
)
def test_a_text_without_a_routing_sentence_stays_held_back(model, text):
    [answer] = predict(model, [text])
    assert (answer.reason, answer.team) == ("out_of_scope", None)


def test_a_routed_text_is_not_read_again_and_a_batch_keeps_its_order(model, calls):
    texts = ["My invoice is wrong.", "I have been a customer for years. My app crashes.", "Please book me a taxi."]
    answers = predict(model, texts)
    assert [(a.reason, a.team) for a in answers] == [("routed", "billing"), ("routed", "bugs"), ("out_of_scope", None)]
    assert calls == [texts, ["I have been a customer for years.", "My app crashes."]]


def test_only_the_first_sentences_are_read_again(model, calls, monkeypatch):
    monkeypatch.setattr(loaded_module, "MAX_SENTENCES", 2)
    [answer] = predict(model, ["I have been a customer for years. I was travelling last week. My app crashes."])
    assert answer.reason == "out_of_scope"
    assert calls[-1] == ["I have been a customer for years.", "I was travelling last week."]


def test_a_text_held_back_for_an_inactive_team_is_not_read_again(model, calls, monkeypatch):
    """Its team has no inbox, and triage decides: another sentence must not route it elsewhere."""
    teams = {**TEAMS, "billing": TeamInfo(name="Billing", triage_threshold=None, active=False)}
    monkeypatch.setitem(SCRIPT, "I was travelling last week. My app crashes.", (BILLING, 0.9))
    [answer] = model.predict(["I was travelling last week. My app crashes."], teams=teams, default_threshold=0.5)
    assert (answer.reason, answer.team, answer.triage) == ("low_confidence", "billing", True)
    assert len(calls) == 1


def test_a_model_without_the_no_intent_label_reads_texts_whole(model, calls, monkeypatch):
    """Only the no-intent label tells context from a request: format-1 models answer as before."""
    older = replace(model, labels=tuple(LABELS_V1), serving=replace(model.serving, no_intent_label=None, ood=None))
    monkeypatch.setitem(SCRIPT, "I have been a customer for years. My invoice is wrong.", (UNSURE[:3], 0.9))
    [answer] = older.predict(
        ["I have been a customer for years. My invoice is wrong."], teams=TEAMS, default_threshold=0.5
    )
    assert (answer.reason, answer.team) == ("low_confidence", "billing") and len(calls) == 1
