"""Classification metrics, single-message latency and file size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .artifact_format import NO_INTENT


def macro_f1(predictions, gold, num_labels: int, skip: tuple[int, ...] = ()) -> float:
    """Macro-F1 over the label indices, less `skip` (the reserved no-intent label is no team)."""
    if len(gold) == 0:
        return 0.0
    indices = [i for i in range(num_labels) if i not in skip]
    return float(f1_score(gold, predictions, labels=indices, average="macro", zero_division=0))


def classification_metrics(predictions, gold, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-team precision/recall/F1/support and the confusion matrix (lists).

    Macro-F1 leaves the reserved no-intent label out (labelled test tickets all have a team).
    """
    predictions, gold = np.asarray(predictions), np.asarray(gold)
    indices = list(range(len(labels)))
    skip = tuple(i for i, label in enumerate(labels) if label == NO_INTENT)
    if len(gold) == 0:
        return {"n": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_team": {}, "confusion_matrix": []}
    p, r, f, s = precision_recall_fscore_support(gold, predictions, labels=indices, zero_division=0)
    per_team = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    return {
        "n": int(len(gold)),
        "accuracy": float((predictions == gold).mean()),
        "macro_f1": macro_f1(predictions, gold, len(labels), skip),
        "per_team": per_team,
        "confusion_matrix": confusion_matrix(gold, predictions, labels=indices).tolist(),
    }


def latency_ms(predict_one, inputs: list, warmup: int = 10, limit: int = 300) -> dict:
    """p50/p95 milliseconds of predict_one(x) over up to `limit` inputs, one call at a time."""
    inputs = inputs[:limit]
    for x in inputs[:warmup]:
        predict_one(x)
    timings = []
    for x in inputs:
        start = time.perf_counter()
        predict_one(x)
        timings.append((time.perf_counter() - start) * 1000)
    if not timings:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": float(np.percentile(timings, 50)), "p95": float(np.percentile(timings, 95)), "n": len(timings)}


def onnx_latency_ms(session, ids: list[list[int]]) -> dict:
    """Latency of one message (batch 1) through an onnxruntime session, tokenisation excluded."""

    def run_one(x: list[int]) -> None:
        row = np.asarray([x], dtype=np.int64)
        session.run(["logits"], {"input_ids": row, "attention_mask": np.ones_like(row)})

    return latency_ms(run_one, ids)


def file_size_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)
