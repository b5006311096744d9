"""The served model chosen on validation (student or hybrid), and the parity gate on what the artifact serves."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from tokenizers import Tokenizer

from finetune.ml.artifact_format import TFIDF_ARRAYS_FILE, read_serving, write_serving
from finetune.ml.baseline import fit_baseline
from finetune.ml.errors import ParityError
from finetune.ml.export import onnx_logits, onnx_session
from finetune.ml.hybrid import ParitySet, ServedScorer, choose, served_parity
from finetune.ml.tfidf import Hybrid, TfidfModel
from tests.ml_fixtures import synthetic_tickets

from .conftest import TINY_LABELS


def confusable_case(n: int = 90):
    """Gold labels 0, 1, 2; the student cannot tell 1 from 2, TF-IDF can but is unsure about 0."""
    y = np.arange(n) % 3
    student = np.zeros((n, 3))
    student[y == 0, 0] = 4.0
    student[y != 0, 1:] = 3.0  # a tie: argmax says 1, wrong for every 2
    tfidf = np.log(np.full((n, 3), 0.2))
    tfidf[y == 0] = np.log([0.4, 0.35, 0.25])
    tfidf[y == 1] = np.log([0.1, 0.8, 0.1])
    tfidf[y == 2] = np.log([0.1, 0.1, 0.8])
    return student, tfidf, y


def test_the_hybrid_serves_when_it_is_more_accurate_on_validation():
    """Student 67 %, TF-IDF ≈ 100 % on 1-vs-2: the fitted hybrid is served and beats both."""
    student, tfidf, y = confusable_case()
    choice = choose(student, tfidf, y, tfidf_accuracy=1.0)
    figures = choice["validation"]
    assert choice["kind"] == "hybrid" and choice["tfidf_weight"] > 0
    assert figures["student"]["accuracy"] == pytest.approx(2 / 3) and figures["hybrid"]["accuracy"] == 1.0
    assert "the hybrid is more accurate" in choice["reason"]


def test_the_student_serves_when_tfidf_only_hurts():
    """A perfect student and a confidently wrong TF-IDF: every weight raises NLL, so the student serves."""
    y = np.arange(90) % 3
    student = np.eye(3)[y] * 2.0
    wrong = np.log(np.full((90, 3), 0.05))
    wrong[np.arange(90), (y + 1) % 3] = np.log(0.9)
    choice = choose(student, wrong, y, tfidf_accuracy=0.0)
    assert choice["kind"] == "student" and choice["tfidf_weight"] == 0.0
    assert choice["validation"]["hybrid"]["nll"] > choice["validation"]["student"]["nll"]
    assert "the student serves" in choice["reason"]


@pytest.fixture
def hybrid_artifact(tiny_run, tmp_path):
    """A copy of the tiny run's artifact serving a hybrid of its int8 model and a freshly fitted baseline."""
    result, _ = tiny_run
    directory = shutil.copytree(result.artifact_dir, tmp_path / "artifact")
    labels = sorted(TINY_LABELS)
    rows = synthetic_tickets(labels, per_label=12, seed=3)
    baseline = fit_baseline([t for t, _ in rows], [labels.index(label) for _, label in rows], seed=0)
    hybrid = Hybrid(3.0, TfidfModel.from_sklearn(baseline, len(result.labels)))
    write_serving(directory, replace(read_serving(directory), hybrid=hybrid))
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    texts = [t for t, _ in synthetic_tickets(labels, per_label=10, seed=7)]
    ids = [tokenizer.encode(t).ids for t in texts]
    session = onnx_session(directory / "model.onnx", 1)
    # The reference student is the int8 model itself: any disagreement comes from the TF-IDF term.
    parity = ParitySet("val", ids, texts, onnx_logits(session, ids, 0))
    return directory, ServedScorer(session, 0, len(result.labels), hybrid), parity, baseline


def test_the_served_hybrid_passes_the_parity_gate(hybrid_artifact):
    """Files as written, int8 + numpy TF-IDF, agree with int8 + scikit-learn on every text."""
    directory, scorer, parity, baseline = hybrid_artifact
    assert served_parity(directory, scorer, parity, baseline, 0.97) == 1.0


def test_the_gate_fails_when_the_served_weight_diverges(hybrid_artifact):
    """serving.json with another weight than the one chosen: the served top labels disagree, not published."""
    directory, scorer, parity, baseline = hybrid_artifact
    body = json.loads((directory / "serving.json").read_text())
    body["hybrid"]["tfidf_weight"] = -30.0
    (directory / "serving.json").write_text(json.dumps(body))
    with pytest.raises(ParityError, match="The served hybrid .* agrees with torch and scikit-learn on"):
        served_parity(directory, scorer, parity, baseline, 0.97)


def test_the_gate_fails_when_the_served_tfidf_files_diverge(hybrid_artifact):
    """TF-IDF arrays that no longer reproduce scikit-learn's model are refused, however the labels fall."""
    directory, scorer, parity, baseline = hybrid_artifact
    with np.load(directory / TFIDF_ARRAYS_FILE) as arrays:
        tampered = {name: arrays[name] for name in arrays.files}
    tampered["coef"] = tampered["coef"] * 1.01
    np.savez(directory / TFIDF_ARRAYS_FILE, **tampered)
    with pytest.raises(ParityError, match="differ from scikit-learn's"):
        served_parity(directory, scorer, parity, baseline, 0.0)


def test_the_gate_fails_when_the_artifact_serves_another_kind(hybrid_artifact):
    """A hybrid chosen but a student-only serving.json written (or the reverse) is refused."""
    directory, scorer, parity, baseline = hybrid_artifact
    body = json.loads((directory / "serving.json").read_text())
    (directory / "serving.json").write_text(json.dumps({**body, "hybrid": None}))
    with pytest.raises(ParityError, match="does not match the model chosen"):
        served_parity(directory, scorer, parity, baseline, 0.0)
