"""Noisy copies of train texts for distillation without an unlabelled pool (finetune/ml/augment.py)."""

from __future__ import annotations

import random
from collections import Counter

from finetune.ml.augment import augment, fill_count, noisy
from finetune.ml.pipeline import run_pipeline
from tests.ml_fixtures import tiny_config, tiny_examples

from .conftest import TINY_LABELS

CLS, SEP, MASK = 101, 102, 103
ROWS = [[CLS, *range(1000 + 10 * i, 1000 + 10 * i + 6 + i % 4), SEP] for i in range(20)]


def test_the_pool_counts_first():
    assert fill_count(2, 1000, 0) == 2000
    assert fill_count(2, 1000, 1500) == 500
    assert fill_count(2, 1000, 7000) == 0  # a helpdesk with a big pool keeps what it gives
    assert fill_count(0, 1000, 0) == 0


def test_copies_keep_the_ends_and_the_window_and_differ_from_their_source():
    copies = augment(ROWS, 200, seed=3, mask_id=MASK)
    assert 150 <= len(copies) <= 200
    longest = max(len(row) for row in ROWS)
    sources = {tuple(row) for row in ROWS}
    for copy in copies:
        assert copy[0] == CLS and copy[-1] == SEP
        assert CLS not in copy[1:-1] and SEP not in copy[1:-1]
        assert 3 <= len(copy) <= longest
        assert tuple(copy) not in sources


def test_the_same_seed_gives_the_same_copies():
    assert augment(ROWS, 50, seed=1, mask_id=MASK) == augment(ROWS, 50, seed=1, mask_id=MASK)
    assert augment(ROWS, 50, seed=1, mask_id=MASK) != augment(ROWS, 50, seed=2, mask_id=MASK)


def test_each_operation_does_what_it_says():
    row, other = ROWS[4], ROWS[9]
    body = row[1:-1]
    masked = noisy(row, "mask", random.Random(0), MASK, other)
    assert MASK in masked and len(masked) == len(row)
    assert all(t == MASK or t == s for t, s in zip(masked, row))
    deleted = noisy(row, "delete", random.Random(0), MASK, other)
    assert len(deleted) < len(row) and set(deleted) <= set(row)
    swapped = noisy(row, "swap", random.Random(0), MASK, other)
    assert Counter(swapped) == Counter(row) and swapped != row
    mixed = noisy(row, "mix", random.Random(0), MASK, other)
    half = len(body) // 2
    assert mixed[1 : 1 + half] == body[:half] and mixed[1 + half : -1] == other[1:-1][len(other[1:-1]) // 2 :]


def test_without_a_mask_token_nothing_is_masked():
    copies = augment(ROWS, 100, seed=0, mask_id=None)
    assert copies and all(None not in copy for copy in copies)


def test_rows_too_short_to_change_are_left_out():
    assert augment([[CLS, SEP], [CLS, 7, SEP]], 10, seed=0, mask_id=None) == []
    one_token = augment([[CLS, 7, SEP]], 5, seed=0, mask_id=MASK)
    assert one_token == [[CLS, MASK, SEP]] * 5


def test_a_pipeline_without_a_pool_distils_on_noisy_copies(tiny_base_model, tmp_path):
    examples, _ = tiny_examples(TINY_LABELS)
    config = tiny_config(tiny_base_model, augment_copies=2, epochs=3, distil_epochs=3)
    result = run_pipeline(config=config, examples=examples, unlabelled=[], work_dir=tmp_path / "run")
    data = result.metrics["data"]
    # every train text (labelled, corpus lines, small-talk copies) gets up to two copies
    assert 1.5 * data["train_texts"] <= data["augmented"] <= 2 * data["train_texts"]
    assert data["unlabelled"] == 0
    assert "noisy copies of train texts" in result.card
    assert result.metrics["config"]["augment_copies"] == 2
