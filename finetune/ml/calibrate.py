"""Temperature scaling, expected calibration error, and the proposed triage threshold."""

from __future__ import annotations

import numpy as np

# Candidate temperatures, log-spaced. The floor matters: on a perfectly separated validation
# set NLL keeps falling as T → 0, which would turn every probability into exactly 1.0.
_TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(10.0), 400))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the gold labels at the given temperature."""
    probs = softmax(logits, temperature)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL (grid search: robust, no local minima issues)."""
    if len(labels) == 0:
        return 1.0
    losses = [nll(logits, labels, t) for t in _TEMPERATURES]
    return float(_TEMPERATURES[int(np.argmin(losses))])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: confidence-vs-accuracy gap averaged over equal-width confidence bins, by bin size."""
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def propose_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float = 0.95) -> float:
    """Lowest confidence t such that answers with confidence ≥ t are right ≥ target_precision.

    Fallbacks: no validation data → 1.0 (everything goes to triage until there is data);
    no threshold reaches the target → the highest confidence seen (only the single most
    confident kind of answer is routed automatically; the rest go to triage).
    """
    if len(labels) == 0:
        return 1.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, correct_sorted = confidence[order], correct[order]
    precision = np.cumsum(correct_sorted) / np.arange(1, len(order) + 1)
    # Only the last index of a run of equal confidences is a valid cut ("≥ t" takes them all).
    last_of_value = np.append(conf_sorted[1:] != conf_sorted[:-1], True)
    ok = np.flatnonzero(last_of_value & (precision >= target_precision))
    if len(ok) == 0:
        return float(conf_sorted[0])
    return float(conf_sorted[ok[-1]])


def calibration_report(val_logits: np.ndarray, y: np.ndarray, target_precision: float) -> dict:
    """Temperature on validation NLL; ECE and NLL before/after; the threshold for the target precision."""
    y = np.asarray(y, dtype=np.int64)
    temperature = fit_temperature(val_logits, y)
    probs = softmax(val_logits, temperature)
    threshold = propose_threshold(probs, y, target_precision)
    kept = probs.max(1) >= threshold
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(softmax(val_logits), y),
        "ece_after": expected_calibration_error(probs, y),
        "nll_before": nll(val_logits, y) if len(y) else None,
        "nll_after": nll(val_logits, y, temperature) if len(y) else None,
        "triage_threshold": threshold,
        "target_precision": target_precision,
        "val_coverage": float(kept.mean()) if len(y) else 0.0,
        "val_precision": float((probs.argmax(1) == y)[kept].mean()) if kept.any() else None,
    }
