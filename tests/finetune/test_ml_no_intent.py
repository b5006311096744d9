"""The no-intent corpus (labelled data wins, held-out share, small-talk copies) and the OOD calibration."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.ml.artifact_format import NO_INTENT, OodCheck
from finetune.ml.config import TrainConfig
from finetune.ml.no_intent import (
    claimed_by_labelled,
    corpus_split,
    load_corpus,
    no_intent_lines,
    normalise,
    with_small_talk,
)
from finetune.ml.open_world import held_back_share, ood_check


def test_the_shipped_corpus_loads_hundreds_of_distinct_lines():
    lines = load_corpus()
    assert len(lines) >= 500 and len(set(lines)) == len(lines) and all(line.strip() == line for line in lines)


def test_the_no_intent_label_trains_on_both_corpora_each_line_once():
    """Chat small talk and the longer context sentences written around a request."""
    from finetune.ml.no_intent import CONTEXT_CORPUS, NO_INTENT_CORPUS

    lines, context = no_intent_lines(), load_corpus(CONTEXT_CORPUS)
    assert len(context) >= 150 and set(context) <= set(lines)
    assert lines[: len(load_corpus(NO_INTENT_CORPUS))] == load_corpus(NO_INTENT_CORPUS)
    assert len(set(lines)) == len(lines) and sum(len(line) > 40 for line in context) > 50


def test_labelled_tickets_claim_equal_lines_after_normalising():
    lines = ["Thanks!!", "hello there", "ok"]
    assert normalise("  Thanks!! ") == normalise("thanks")
    assert claimed_by_labelled(lines, ["thanks", "my card broke"], None, 0.9) == [True, False, False]


def test_labelled_tickets_claim_similar_lines_by_cosine():
    """A line at or above the threshold to any labelled text is dropped; below it stays."""
    table = {"hello there": [1.0, 0.0], "ok": [0.0, 1.0], "hi there friend": [0.95, np.sqrt(1 - 0.95**2)]}

    def vectors(texts):
        return np.array([table[t] for t in texts])

    assert claimed_by_labelled(["hello there", "ok"], ["hi there friend"], vectors, 0.9) == [True, False]
    assert claimed_by_labelled(["hello there", "ok"], ["hi there friend"], vectors, 0.96) == [False, False]


def test_corpus_split_drops_claimed_lines_and_holds_out_a_seeded_share():
    lines = [f"line {i}" for i in range(100)]
    claimed = [i < 10 for i in range(100)]
    corpus = corpus_split(lines, claimed, holdout=0.2, seed=3)
    assert len(corpus.dropped) == 10 and len(corpus.heldout) == 18 and len(corpus.train) == 72
    assert not set(corpus.heldout) & set(corpus.train) and not set(corpus.dropped) & set(corpus.train)
    assert corpus_split(lines, claimed, holdout=0.2, seed=3) == corpus


def test_small_talk_copies_keep_the_label_and_contain_the_question():
    texts, labels = [f"question {i}" for i in range(10)], list(range(10))
    copies, copy_labels = with_small_talk(texts, labels, ["hi", "thanks"], share=0.5, seed=1)
    assert len(copies) == 5
    for copy, label in zip(copies, copy_labels):
        assert f"question {label}" in copy and copy != f"question {label}"
        assert copy.startswith(("hi ", "thanks ")) or copy.endswith((" hi", " thanks"))
    assert with_small_talk(texts, labels, [], share=0.5, seed=1) == ([], [])


def test_a_max_logit_check_passes_the_configured_share_of_validation():
    """ood_method="max_logit" needs no train vectors: its threshold passes the share of validation max logits."""
    val_logits = np.random.default_rng(0).normal(size=(400, 5))
    for share in (0.8, 0.95):
        config = TrainConfig(
            base_model="unused", ood_method="max_logit", ood_in_scope_pass=share, ood_max_accuracy_loss=0
        )
        check = ood_check(config, (val_logits, None, None), None, list("abcde"))
        passed = (val_logits.max(axis=1) >= check.threshold).mean()
        assert check.method == "max_logit"
        assert passed == pytest.approx(share, abs=0.01) and check.in_scope_pass == pytest.approx(passed)
    config = TrainConfig(base_model="unused", ood_method="max_logit", ood_in_scope_pass=1.0)
    assert ood_check(config, (val_logits, None, None), None, list("abcde")) is None


def test_held_back_counts_no_intent_out_of_scope_and_low_confidence():
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])
    in_scope = np.array([0.9, 0.9, 0.9, 0.1])
    check = OodCheck("max_logit", 0.5, 1.0)
    assert held_back_share(probs, in_scope, ["a", "b", NO_INTENT], check, 0.6) == 0.75
    assert held_back_share(probs, None, ["a", "b", "c"], None, 0.6) == 0.25


def _prepared(train: list[str], labels: list[int]):
    from finetune.ml.prepared import Prepared

    return Prepared(
        ["accounts", "billing"],
        {"train": list(train), "val": [], "test": []},
        {"train": list(labels), "val": [], "test": []},
        {},
        [],
        "test",
    )


def test_not_a_request_lines_join_the_no_intent_class_first():
    """The helpdesk's own "not a request" texts are trained as no-intent (before the corpus lines, never
    cut by the corpus cap); one that a team's ticket also says is left to the team."""
    from finetune.ml.config import TrainConfig
    from finetune.ml.open_world import add_no_intent

    config = TrainConfig(base_model="unused", no_intent_similarity=1.5, small_talk_share=0)
    data = _prepared(["my invoice is wrong", "reset my password"], [1, 0])
    own = ["cheers mate, legend", "ta very much", "Reset my password!"]
    add_no_intent(config, data, data.texts["train"], own, encode_texts=None, pad_id=0)
    no_intent = data.labels.index(NO_INTENT)
    trained = dict(zip(data.texts["train"], data.y["train"]))
    assert trained["cheers mate, legend"] == trained["ta very much"] == no_intent
    assert trained["reset my password"] == data.labels.index("accounts") and "Reset my password!" not in trained
    assert data.corpus.helpdesk == ["cheers mate, legend", "ta very much"]
    # two labelled train texts: the cap leaves room for no corpus line beside the helpdesk's own two
    assert data.texts["train"][2:] == ["cheers mate, legend", "ta very much"]
