"""The served TF-IDF + LR (numpy) reproduces scikit-learn's fitted baseline, and a hybrid adds it to logits."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.ml.baseline import fit_baseline
from finetune.ml.tfidf import Hybrid, TfidfModel, char_wb_ngrams, spread, word_ngrams
from finetune.ml.window import TEXT_WINDOW_CHARS, window_text
from tests.ml_fixtures import TOPICS, synthetic_tickets

# What a router meets besides clean tickets: case, runs of white space, punctuation, repeats,
# one-letter words, words the vocabulary never saw, and a text with no word at all.
ODD_TEXTS = [
    "Hello  my INVOICE\tis   wrong!! refund refund refund",
    "i  a login?? password-locked\n\nplease",
    "crash, crash; bug... screen/freeze (fails) 2x",
    "zzqx unknownword",
    "!!",
    "a",
]


def fitted(labels: list[str], per_label: int = 12):
    rows = synthetic_tickets(labels, per_label=per_label, seed=3)
    return fit_baseline([t for t, _ in rows], [labels.index(label) for _, label in rows], seed=0)


@pytest.mark.parametrize("labels", [["accounts", "billing", "bugs"], ["accounts", "billing"]])
def test_numpy_scores_equal_scikit_learns(labels):
    """decision_function and predict_proba agree to 1e-12, multinomial and binary, on clean and odd texts."""
    baseline = fitted(labels)
    model = TfidfModel.from_sklearn(baseline, len(labels))
    texts = [t for t, _ in synthetic_tickets(labels, per_label=5, seed=9)] + ODD_TEXTS
    expected = baseline.decision_function(texts).reshape(len(texts), -1)
    assert np.abs(model.decision(texts) - expected).max() < 1e-12
    assert np.abs(np.exp(model.log_proba(texts)) - baseline.predict_proba(texts)).max() < 1e-12


def test_a_long_ticket_is_scored_on_its_character_window_alike_by_both():
    """A 30,000-character ticket: scikit-learn and numpy agree, and both read only its window."""
    labels = ["accounts", "billing", "bugs"]
    baseline = fitted(labels)
    model = TfidfModel.from_sklearn(baseline, len(labels))
    assert model.max_chars == TEXT_WINDOW_CHARS
    long = " ".join([" ".join(TOPICS[1])] * 40 + ["filler words here"] * 1500 + [" ".join(TOPICS[2])] * 30)
    assert len(long) > 30_000
    expected = baseline.decision_function([long]).reshape(1, -1)
    assert np.abs(model.decision([long]) - expected).max() < 1e-12
    assert np.array_equal(model.decision([long]), model.decision([window_text(long, TEXT_WINDOW_CHARS)]))


def test_the_analyzers_produce_scikit_learns_terms():
    """Word 1–2 grams and char_wb 3–5 grams, term for term, as the fitted vectorizers build them."""
    union = fitted(["accounts", "billing", "bugs"]).steps[0][1]
    word, char = (vectorizer.build_analyzer() for _, vectorizer in union.transformer_list)
    for text in ODD_TEXTS + [" ".join(TOPICS[0])]:
        assert word_ngrams(text, 1, 2) == word(text)
        assert char_wb_ngrams(text, 3, 5) == char(text)


def test_a_label_tfidf_never_saw_gets_its_best_value():
    """Labels absent from the baseline's training (no-intent, an empty team) neither gain nor lose against its favourite."""
    class_log_proba = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    out = spread(class_log_proba, np.array([0, 2, 3]), 5)
    assert np.allclose(out[:, [0, 2, 3]], class_log_proba)
    assert np.allclose(out[:, 1], np.log([0.7, 0.8])) and np.allclose(out[:, 4], np.log([0.7, 0.8]))


def test_the_hybrid_adds_weighted_log_probabilities_to_the_logits():
    """Hybrid.logits = student logits + weight × log_proba, per text."""
    labels = ["accounts", "billing", "bugs"]
    model = TfidfModel.from_sklearn(fitted(labels), len(labels))
    texts = [" ".join(TOPICS[1][:3]), " ".join(TOPICS[2][:3])]
    student = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    assert np.allclose(Hybrid(2.5, model).logits(student, texts), student + 2.5 * model.log_proba(texts))
