"""Stratified, seeded train/val/test splits that never move a ticket once it has a split."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from .errors import NotEnoughDataError

SPLITS = ("train", "val", "test")


def assign_splits(
    labels: list[str],
    existing: list[str],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> list[str]:
    """Return a split for every item; keep non-empty existing splits, fill the rest per label.

    New items of a label go, one by one in a seeded order, to whichever split is furthest below
    its target count for that label, so the label's proportions approach the targets even when
    earlier runs froze part of them.
    """
    if len(labels) != len(existing):
        raise ValueError(f"labels ({len(labels)}) and existing ({len(existing)}) differ in length")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"bad fractions: val={val_fraction}, test={test_fraction}")
    unknown = {s for s in existing if s and s not in SPLITS}
    if unknown:
        raise ValueError(f"unknown existing splits {sorted(unknown)}; expected one of {SPLITS}")
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    result = list(existing)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = random.Random(seed)
    for label in sorted(by_label):
        indices = by_label[label]
        counts = Counter(existing[i] for i in indices if existing[i])
        new = [i for i in indices if not existing[i]]
        rng.shuffle(new)
        total = len(indices)
        for i in new:
            # Deficit = target share of the label minus what the split already holds.
            split = max(SPLITS, key=lambda s: (fractions[s] * total - counts[s], -SPLITS.index(s)))
            result[i] = split
            counts[split] += 1
    return result


def check_enough(labels: list[str], min_per_team: int, *, teams: list[str] | None = None) -> None:
    """Raise NotEnoughDataError naming every team (of `teams`, or those seen) below the minimum."""
    counts = Counter(labels)
    short = [(team, counts[team]) for team in sorted(set(teams or []) | set(counts))]
    short = [(team, n) for team, n in short if n < min_per_team]
    if short:
        listed = ", ".join(f"{team} has {n}" for team, n in short)
        raise NotEnoughDataError(f"Too few labelled tickets: {listed} (need {min_per_team} each).")
    if len(counts) < 2:
        raise NotEnoughDataError(f"Need labelled tickets for at least 2 teams to train a router; got {len(counts)}.")
