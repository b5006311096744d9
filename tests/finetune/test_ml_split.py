"""Splits: stratified, seeded, frozen once assigned; the not-enough-data message."""

from __future__ import annotations

from collections import Counter

import pytest

from finetune.ml.errors import NotEnoughDataError, PipelineError
from finetune.ml.split import assign_splits, check_enough


def _labels() -> list[str]:
    return ["billing"] * 100 + ["accounts"] * 50 + ["bugs"] * 20


def test_splits_are_stratified_per_label():
    """Every label gets about 80/10/10 of its own items."""
    labels = _labels()
    splits = assign_splits(labels, [""] * len(labels), seed=1, val_fraction=0.1, test_fraction=0.1)
    for label, total in Counter(labels).items():
        counts = Counter(s for s, l in zip(splits, labels) if l == label)
        assert counts["val"] == round(0.1 * total)
        assert counts["test"] == round(0.1 * total)
        assert counts["train"] == total - counts["val"] - counts["test"]


def test_splits_are_seeded():
    """The same seed gives the same assignment; another seed a different one."""
    labels = _labels()
    first = assign_splits(labels, [""] * len(labels), seed=7, val_fraction=0.1, test_fraction=0.1)
    again = assign_splits(labels, [""] * len(labels), seed=7, val_fraction=0.1, test_fraction=0.1)
    other = assign_splits(labels, [""] * len(labels), seed=8, val_fraction=0.1, test_fraction=0.1)
    assert first == again
    assert first != other


def test_existing_splits_are_kept_and_new_items_fill_the_gaps():
    """Items with a split keep it; new items go where the label is short of its targets."""
    labels = ["billing"] * 20
    existing = ["train"] * 10 + [""] * 10
    splits = assign_splits(labels, existing, seed=0, val_fraction=0.2, test_fraction=0.2)
    assert splits[:10] == ["train"] * 10
    assert Counter(splits) == {"train": 12, "val": 4, "test": 4}


def test_frozen_test_set_survives_new_data():
    """Adding tickets later never moves a ticket out of (or into) an earlier test set."""
    labels = _labels()
    first = assign_splits(labels, [""] * len(labels), seed=3, val_fraction=0.1, test_fraction=0.1)
    grown = assign_splits(labels + ["bugs"] * 30, first + [""] * 30, seed=99, val_fraction=0.1, test_fraction=0.1)
    assert grown[: len(first)] == first
    assert Counter(grown[len(first) :])["test"] == 3


def test_unknown_existing_split_is_rejected():
    """A split other than train/val/test is an error that names it."""
    with pytest.raises(ValueError, match="holdout"):
        assign_splits(["a", "b"], ["holdout", ""], seed=0, val_fraction=0.1, test_fraction=0.1)


def test_check_enough_names_every_short_team():
    """The error lists each short team with its count, including teams with none."""
    labels = ["billing"] * 3 + ["accounts"] * 9
    with pytest.raises(NotEnoughDataError) as error:
        check_enough(labels, 8, teams=["billing", "accounts", "security"])
    assert str(error.value) == "Too few labelled tickets: billing has 3, security has 0 (need 8 each)."
    assert isinstance(error.value, PipelineError)


def test_check_enough_passes_and_needs_two_teams():
    """Enough tickets for two teams passes; a single team cannot train a router."""
    check_enough(["a"] * 8 + ["b"] * 8, 8)
    with pytest.raises(NotEnoughDataError, match="at least 2 teams"):
        check_enough(["a"] * 20, 8)
