"""The out-of-scope score: fitted and calibrated at training time, computed by the same code when serving.

A check's score is higher the more a text looks like the training tickets; below the check's
threshold the text is out of scope. "mahalanobis": minus the smallest squared Mahalanobis distance
of the ONNX model's pooled vector to a team's mean, under one covariance shared by all teams
(stored pre-whitened: ``whitener`` W with W Wᵀ = Σ⁻¹, and the means times W, so a text costs one
[hidden x hidden] product). "mahalanobis_max_logit": that score and the largest raw logit, each
divided by its standard deviation on validation, summed. "centroid_cosine": the best cosine to a team's unit mean.
"max_logit": the largest raw logit.
"""

from __future__ import annotations

import numpy as np

from .artifact_format import OodCheck

POOLED_METHODS = (
    "centroid_cosine",
    "mahalanobis",
    "mahalanobis_max_logit",
)  # the checks that read the ONNX model's pooled output


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


def in_scope_scores(check: OodCheck, logits: np.ndarray, pooled: np.ndarray | None) -> np.ndarray:
    """The check's score per text (float64) from the ONNX model's logits and pooled outputs."""
    if check.method == "max_logit":
        return logits.max(axis=1).astype(np.float64)
    if check.method == "centroid_cosine":
        return (unit_rows(pooled) @ check.centroids.T).max(axis=1).astype(np.float64)
    if check.method == "mahalanobis":
        return mahalanobis_scores(check, pooled)
    if check.method == "mahalanobis_max_logit":
        return check.mix[0] * mahalanobis_scores(check, pooled) + check.mix[1] * logits.max(axis=1).astype(np.float64)
    raise ValueError(f"unknown OOD method {check.method!r}")


def mahalanobis_scores(check: OodCheck, pooled: np.ndarray) -> np.ndarray:
    """Minus the smallest squared distance of whitened `pooled` rows to the whitened team means."""
    z = pooled.astype(np.float32) @ check.whitener  # float32 like the stored arrays: no per-call copy of W
    means = check.centroids
    squared = (z * z).sum(axis=1, keepdims=True) - 2 * z @ means.T + (means * means).sum(axis=1)
    return -squared.min(axis=1).astype(np.float64)


def fit_mahalanobis(vectors: np.ndarray, classes: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """(means @ W, W) for the class means of `vectors` and their shared within-class covariance.

    The covariance is shrunk toward its mean variance (``shrinkage`` of the way): a few thousand
    tickets in 384 dimensions leave it close to singular.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    labels, index = np.unique(classes, return_inverse=True)
    means = np.stack([vectors[index == i].mean(axis=0) for i in range(len(labels))])
    centred = vectors - means[index]
    covariance = centred.T @ centred / len(vectors)
    identity = np.eye(len(covariance)) * np.trace(covariance) / len(covariance)
    values, vecs = np.linalg.eigh((1 - shrinkage) * covariance + shrinkage * identity)
    whitener = vecs / np.sqrt(values.clip(1e-12))
    return (means @ whitener).astype(np.float32), whitener.astype(np.float32)


def pass_threshold(scores: np.ndarray, in_scope_pass: float) -> tuple[float, float]:
    """(threshold, share of `scores` at or above it): the largest threshold passing `in_scope_pass`."""
    threshold = float(np.quantile(scores, 1 - in_scope_pass, method="lower"))
    return threshold, float((scores >= threshold).mean())


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    """P(an in-scope text scores above an out-of-scope one), ties counted half (Mann-Whitney)."""
    _, inverse, counts = np.unique(np.concatenate([in_scope, out_of_scope]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse][: len(in_scope)]  # 1-based, ties share their mean rank
    return float((ranks.sum() - len(in_scope) * (len(in_scope) + 1) / 2) / (len(in_scope) * len(out_of_scope)))


def fpr_at_recall(in_scope: np.ndarray, out_of_scope: np.ndarray, recall: float = 0.95) -> float:
    """Share of out-of-scope texts passing the threshold that passes `recall` of the in-scope ones."""
    return float((out_of_scope >= pass_threshold(in_scope, recall)[0]).mean())


def loss_threshold(scores: np.ndarray, correct: np.ndarray, max_loss: float) -> float:
    """The highest threshold that holds back at most `max_loss` (a share of all texts) of correctly routed ones.

    Texts scoring at or above the threshold pass; held-back wrong answers cost nothing, so this
    spends the accuracy budget on the texts the model gets wrong anyway.
    """
    order = np.argsort(scores, kind="stable")
    ordered, lost = scores[order], np.cumsum(correct[order])  # lost[i]: correct ones at or below ordered[i]
    allowed = np.flatnonzero(lost <= max_loss * len(scores) + 1e-9)
    # Holding back everything below ordered[k] loses lost[k-1]; ties must go together.
    candidates = [ordered[0]] + [
        ordered[k + 1] for k in allowed if k + 1 < len(ordered) and ordered[k + 1] > ordered[k]
    ]
    return float(max(candidates))
