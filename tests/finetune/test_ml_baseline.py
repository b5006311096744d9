"""The TF-IDF + logistic regression baseline."""

from __future__ import annotations

from finetune.ml.baseline import run_baseline
from tests.ml_fixtures import synthetic_tickets


def test_baseline_fits_and_scores_on_the_test_split():
    """On separable synthetic tickets the baseline is near perfect and reports per-team metrics."""
    labels = ["accounts", "billing", "bugs"]
    train = synthetic_tickets(labels, per_label=20, seed=0)
    test = synthetic_tickets(labels, per_label=10, seed=5)
    metrics = run_baseline(
        [t for t, _ in train],
        [labels.index(l) for _, l in train],
        [t for t, _ in test],
        [labels.index(l) for _, l in test],
        labels,
    )
    assert metrics["n"] == 30
    assert metrics["accuracy"] >= 0.9
    assert set(metrics["per_team"]) == set(labels)
    assert sum(map(sum, metrics["confusion_matrix"])) == 30
