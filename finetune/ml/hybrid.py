"""The served model, chosen on validation: the int8 student alone, or the hybrid with TF-IDF + LR.

The hybrid adds weight × the TF-IDF model's log-probabilities to the student's logits (tfidf.py);
the weight minimises validation NLL (with its own temperature). The hybrid is served only when
it is more accurate on validation, or as accurate with a lower NLL. TF-IDF alone is reported,
never served: it has no no-intent class and no out-of-scope signal, and a large weight already
lets it decide the teams.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import calibrate
from .artifact_format import read_serving
from .baseline import fit_baseline
from .errors import ParityError
from .export import check_parity, onnx_logits
from .tfidf import Hybrid, TfidfModel, combine, spread

# Candidate weights, log-spaced: from a light touch to TF-IDF deciding the teams alone.
WEIGHTS = tuple(float(w) for w in np.geomspace(0.05, 20.0, 25))
TFIDF_TOLERANCE = 1e-6  # the numpy TF-IDF log-probabilities against scikit-learn's


@dataclass(frozen=True)
class Candidate:
    """One way of scoring validation: its weight on TF-IDF (0 = the student alone) and its figures."""

    name: str  # "student" or "hybrid"
    weight: float
    accuracy: float
    nll: float  # at its own fitted temperature
    temperature: float


def candidate(
    name: str, student_logits: np.ndarray, tfidf_log_proba: np.ndarray, y: np.ndarray, weight: float
) -> Candidate:
    logits = combine(student_logits, tfidf_log_proba, weight)
    temperature = calibrate.fit_temperature(logits, y)
    accuracy = float((logits.argmax(1) == y).mean())
    return Candidate(name, weight, accuracy, abs(calibrate.nll(logits, y, temperature)), temperature)  # no -0.0


def fit_weight(student_logits: np.ndarray, tfidf_log_proba: np.ndarray, y: np.ndarray) -> Candidate:
    """The hybrid of lowest validation NLL over WEIGHTS (NLL: smoother than accuracy on a few hundred texts)."""
    fits = [candidate("hybrid", student_logits, tfidf_log_proba, y, w) for w in WEIGHTS]
    return min(fits, key=lambda c: c.nll)


def choose(student_logits: np.ndarray, tfidf_log_proba: np.ndarray, y: np.ndarray, tfidf_accuracy: float) -> dict:
    """Which model serves, with every candidate's validation figures and the reason in a sentence."""
    y = np.asarray(y, dtype=np.int64)
    student = candidate("student", student_logits, tfidf_log_proba, y, 0.0)
    hybrid = fit_weight(student_logits, tfidf_log_proba, y)
    better = (hybrid.accuracy, -hybrid.nll) > (student.accuracy, -student.nll)
    served = hybrid if better else student
    reason = (
        f"on {len(y)} validation tickets the hybrid (TF-IDF weight {hybrid.weight:.2f}) scores "
        f"{hybrid.accuracy:.1%} (NLL {hybrid.nll:.3f}), the int8 student {student.accuracy:.1%} "
        f"(NLL {student.nll:.3f}), TF-IDF + LR alone {tfidf_accuracy:.1%}: the {served.name} "
        + (
            "serves: the hybrid is not more accurate, nor as accurate with a lower NLL."
            if not better
            else "is more accurate."
            if hybrid.accuracy > student.accuracy
            else "is as accurate, with a lower NLL."
        )
    )
    return {
        "kind": served.name,
        "tfidf_weight": served.weight,
        "reason": reason,
        "validation": {"student": asdict(student), "hybrid": asdict(hybrid), "tfidf": {"accuracy": tfidf_accuracy}},
    }


def student_only(reason: str) -> dict:
    return {"kind": "student", "tfidf_weight": 0.0, "reason": reason, "validation": None}


@dataclass(frozen=True)
class ServedScorer:
    """Served logits of token ids and their texts: the int8 ONNX student, plus the hybrid's TF-IDF term."""

    session: object
    pad_id: int
    num_labels: int
    hybrid: Hybrid | None

    def student(self, ids: list[list[int]]) -> np.ndarray:
        return onnx_logits(self.session, ids, self.pad_id).astype(np.float64)

    def logits(self, ids: list[list[int]], texts: list[str]) -> np.ndarray:
        student = self.student(ids)
        return student if self.hybrid is None or not texts else self.hybrid.logits(student, texts)


def sklearn_log_proba(baseline, texts: list[str], num_labels: int) -> np.ndarray:
    """The fitted scikit-learn model's log-probabilities, spread over the labels as the served ones are."""
    classes = np.asarray(baseline.steps[-1][1].classes_, dtype=np.int64)
    return spread(baseline.predict_log_proba(texts), classes, num_labels)


def serve_choice(config, data, session, pad_id: int) -> tuple[ServedScorer, dict, object]:
    """Fit the baseline on the labelled train tickets; choose the student or the hybrid on validation.

    Returns the served scorer, the choice for metrics.json, and the fitted scikit-learn baseline (or None).
    """
    scorer = ServedScorer(session, pad_id, len(data.labels), None)
    if not config.baseline:
        return scorer, student_only("No TF-IDF baseline was fitted (baseline=False): the student serves."), None
    n, start = data.labelled_train, time.perf_counter()  # labelled tickets only: no corpus lines, no small-talk copies
    baseline = fit_baseline(data.texts["train"][:n], data.y["train"][:n], seed=config.seed)
    fit_s = time.perf_counter() - start
    if not config.hybrid or not data.y["val"]:
        reason = (
            "hybrid=False: the student serves."
            if not config.hybrid
            else "No validation tickets to compare on: the student serves."
        )
        return scorer, {**student_only(reason), "baseline_fit_s": fit_s}, baseline
    tfidf = TfidfModel.from_sklearn(baseline, len(data.labels))
    val_student = scorer.student(data.ids["val"])
    tfidf_accuracy = float((baseline.predict(data.texts["val"]) == np.asarray(data.y["val"])).mean())
    choice = {
        **choose(val_student, tfidf.log_proba(data.texts["val"]), data.y["val"], tfidf_accuracy),
        "baseline_fit_s": fit_s,
    }
    hybrid = Hybrid(choice["tfidf_weight"], tfidf) if choice["kind"] == "hybrid" else None
    return replace(scorer, hybrid=hybrid), choice, baseline


@dataclass(frozen=True)
class ParitySet:
    """The texts the parity gates run on, and the torch student's logits for them."""

    name: str  # which splits they came from, e.g. "val+train"
    ids: list[list[int]]
    texts: list[str]
    torch_logits: np.ndarray


def served_parity(work_dir: Path, scorer: ServedScorer, parity: ParitySet, baseline, threshold: float) -> float:
    """The parity gate on what the artifact serves: its serving files as read back, int8 ONNX, numpy TF-IDF.

    The reference is the torch student plus, for a hybrid, the chosen weight × scikit-learn's
    log-probabilities. The TF-IDF term must equal scikit-learn's; top-1 agreement must reach `threshold`.
    """
    chosen, hybrid = scorer.hybrid, read_serving(work_dir).hybrid
    if (hybrid is None) != (chosen is None):
        raise ParityError("The artifact's hybrid block does not match the model chosen on validation; not published.")
    reference = parity.torch_logits.astype(np.float64)
    if chosen is not None:
        reference_tfidf = sklearn_log_proba(baseline, parity.texts, scorer.num_labels)
        gap = float(np.abs(hybrid.model.log_proba(parity.texts) - reference_tfidf).max())
        if not gap <= TFIDF_TOLERANCE:
            raise ParityError(
                f"The served TF-IDF log-probabilities differ from scikit-learn's by up to {gap:.2e} "
                f"(allowed {TFIDF_TOLERANCE:g}) on {len(parity.texts)} texts; not published."
            )
        reference = combine(reference, reference_tfidf, chosen.weight)
    served = replace(scorer, hybrid=hybrid).logits(parity.ids, parity.texts)
    return check_parity(
        reference,
        served,
        threshold,
        subject=f"The served {'hybrid' if hybrid else 'student'} "
        "(int8 ONNX and the artifact's files) agrees with torch and scikit-learn",
    )
