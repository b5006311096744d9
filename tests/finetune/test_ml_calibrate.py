"""Temperature scaling, ECE and the proposed triage threshold on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.ml import calibrate


def _overconfident(n: int = 2000, seed: int = 0):
    """Logits that are right ~70% of the time but claim ~99% confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    predicted = np.where(rng.random(n) < 0.7, labels, (labels + 1) % 4)
    logits = rng.normal(0, 0.5, (n, 4))
    logits[np.arange(n), predicted] += 8.0
    return logits, labels


def test_temperature_scaling_lowers_nll_and_ece():
    """On an over-confident model the fitted temperature is > 1 and improves NLL and ECE."""
    logits, labels = _overconfident()
    temperature = calibrate.fit_temperature(logits, labels)
    assert temperature > 1.5
    assert calibrate.nll(logits, labels, temperature) < calibrate.nll(logits, labels) - 0.5
    before = calibrate.expected_calibration_error(calibrate.softmax(logits), labels)
    after = calibrate.expected_calibration_error(calibrate.softmax(logits, temperature), labels)
    assert before > 0.25
    assert after < 0.05


def test_ece_is_zero_when_confidence_matches_accuracy():
    """Confidence 0.75 on items that are right 3 times out of 4 is perfectly calibrated."""
    probs = np.tile([0.75, 0.25], (4, 1))
    assert calibrate.expected_calibration_error(probs, np.array([0, 0, 0, 1])) == 0.0


def test_propose_threshold_meets_target_precision():
    """Answers at or above the proposed threshold are right at least 95% of the time."""
    rng = np.random.default_rng(1)
    n = 3000
    confidence = rng.uniform(0.34, 1.0, n)
    labels = rng.integers(0, 3, n)
    correct = rng.random(n) < confidence
    predicted = np.where(correct, labels, (labels + 1) % 3)
    probs = np.full((n, 3), 0.0)
    probs[np.arange(n), predicted] = confidence
    probs[np.arange(n), (predicted + 1) % 3] = 1 - confidence
    threshold = calibrate.propose_threshold(probs, labels, 0.95)
    kept = probs.max(1) >= threshold
    assert (probs.argmax(1) == labels)[kept].mean() >= 0.95
    assert 0.7 < threshold < 0.99
    # It is the lowest such threshold: one step lower misses the target.
    below = probs.max(1) >= np.max(probs.max(1)[probs.max(1) < threshold])
    assert (probs.argmax(1) == labels)[below].mean() < 0.95


def test_propose_threshold_fallbacks():
    """Unreachable target → the highest confidence seen; no data → 1.0 (all to triage)."""
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert calibrate.propose_threshold(probs, np.array([1, 1]), 0.95) == 0.9
    assert calibrate.propose_threshold(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0


def test_temperature_stays_sane_on_a_perfectly_separated_set():
    """All-correct validation logits do not drive T to zero (probabilities would all be 1.0)."""
    logits = np.array([[4.0, 0.0], [0.0, 3.0], [5.0, 1.0]])
    temperature = calibrate.fit_temperature(logits, np.array([0, 1, 0]))
    assert temperature == pytest.approx(0.25)
    assert calibrate.softmax(logits, temperature).max() < 1.0
