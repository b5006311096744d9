"""The pure selection behind label next and the active-learning benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finetune.ml.selection import score_margins, select_uncertain, text_features


def test_margin_is_top_one_minus_top_two():
    """The margin is the gap between the two most likely teams, whatever their column."""
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.45, 0.45], [0.3, 0.1, 0.6]])
    assert score_margins(probabilities) == pytest.approx([0.5, 0.0, 0.3])


def test_margin_needs_at_least_two_teams():
    """A single-column score matrix is refused with its shape in the message."""
    with pytest.raises(ValueError, match=r"\(2, 1\)"):
        score_margins(np.array([[1.0], [1.0]]))


def test_lowest_margin_comes_first():
    """With unrelated texts the order is simply by ascending margin."""
    features = text_features(["card arrived late", "refund my invoice", "password reset link", "app crashes"])
    order = select_uncertain(margins=np.array([0.5, 0.1, 0.9, 0.3]), features=features, count=4)
    assert order == [1, 3, 0, 2]


def test_near_duplicates_are_spread_out():
    """A near-duplicate of a picked text waits until every distinct candidate has gone."""
    texts = [
        "where is my refund for the invoice",
        "where is my refund for the invoice?",
        "my card was stolen",
        "app is slow",
    ]
    order = select_uncertain(margins=np.array([0.10, 0.11, 0.40, 0.50]), features=text_features(texts), count=4)
    assert order == [0, 2, 3, 1]


def test_avoid_rows_count_as_already_picked():
    """A text similar to the one just shown is not shown next, even with the lowest margin."""
    texts = ["reset my password please", "my invoice is wrong", "reset my password please"]
    features = text_features(texts)
    order = select_uncertain(margins=np.array([0.05, 0.2]), features=features[:2], count=1, avoid=features[2:])
    assert order == [1]


def test_only_duplicates_left_takes_the_least_similar():
    """When every candidate is a near-duplicate, selection still returns the requested count."""
    texts = ["refund please", "refund please", "refund please now"]
    order = select_uncertain(
        margins=np.array([0.1, 0.2, 0.3]), features=text_features(texts), count=3, max_similarity=0.1
    )
    assert sorted(order) == [0, 1, 2] and order[0] == 0


def test_candidates_bound_the_search():
    """Only the ``candidates`` most uncertain items are considered."""
    features = text_features(["alpha one", "beta two", "gamma three", "delta four"])
    order = select_uncertain(margins=np.array([0.4, 0.1, 0.3, 0.2]), features=features, count=2, candidates=2)
    assert order == [1, 3]


def test_feature_rows_must_match_margins():
    """Mismatched inputs are refused rather than silently misaligned."""
    with pytest.raises(ValueError, match="3 feature rows for 2 margins"):
        select_uncertain(margins=np.array([0.1, 0.2]), features=text_features(["a b", "c d", "e f"]), count=1)


def test_selection_imports_without_django():
    """The benchmark imports the admin's selection function without configuring Django."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = "import sys, finetune.ml.selection; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
