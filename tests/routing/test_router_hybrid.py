"""An artifact serving the hybrid (format 3 and later): the router's scores are student logits + weight × TF-IDF log-probabilities."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from finetune.ml.artifact_format import FORMAT_VERSION, read_serving, write_serving
from finetune.ml.baseline import fit_baseline
from finetune.ml.calibrate import softmax
from finetune.ml.hybrid import sklearn_log_proba
from finetune.ml.onnx_batches import SERVE_BATCH, padded
from finetune.ml.tfidf import Hybrid, TfidfModel
from routing.loaded_model import LoadedModel
from routing.models import ModelVersion
from tests.ml_fixtures import TOPICS, make_tiny_artifact, register_artifact, synthetic_tickets

pytestmark = pytest.mark.django_db
LABELS = ["accounts", "billing", "bugs"]
WEIGHT = 2.0
# Each text mixes two teams' topic words, so the TF-IDF term can move the answer.
TEXTS = [f"my {TOPICS[0][i]} and {TOPICS[1][i]} {TOPICS[2][i]} please" for i in range(4)]


@pytest.fixture
def versions(store):
    """The tiny student-only artifact, and a copy that serves it with a TF-IDF baseline (weight 2)."""
    student_dir = make_tiny_artifact(store, LABELS, name="student")
    hybrid_dir = make_tiny_artifact(store, LABELS, name="hybrid")
    rows = synthetic_tickets(LABELS, per_label=12, seed=3)
    baseline = fit_baseline([t for t, _ in rows], [LABELS.index(label) for _, label in rows], seed=0)
    serving = read_serving(hybrid_dir)
    model = TfidfModel.from_sklearn(baseline, len(serving.labels))
    write_serving(hybrid_dir, replace(serving, hybrid=Hybrid(WEIGHT, model)))
    student = register_artifact(student_dir, "student", ModelVersion.State.ACTIVE)
    ModelVersion.objects.filter(pk=student.pk).update(state=ModelVersion.State.CANDIDATE)
    return student, register_artifact(hybrid_dir, "hybrid", ModelVersion.State.ACTIVE), baseline


def test_the_router_serves_the_hybrid_scores(router, teams, versions):
    """Probabilities = softmax((int8 logits + 2 × scikit-learn's log-probabilities) / T): numpy reproduces the fit."""
    student_version, hybrid_version, baseline = versions
    student, hybrid = LoadedModel.from_version(student_version), LoadedModel.from_version(hybrid_version)
    assert hybrid.serving.format == FORMAT_VERSION and hybrid.serving.hybrid.weight == WEIGHT
    # One batch, as the router runs it: int8 activations are quantized per batch.
    assert len(TEXTS) <= SERVE_BATCH
    logits = student.session.run(["logits"], padded(student.rows(TEXTS), student.pad_id))[0]
    served = logits + WEIGHT * sklearn_log_proba(baseline, TEXTS, len(hybrid.labels))
    expected = softmax(served, hybrid.temperature)
    assert hybrid.probabilities(TEXTS) == pytest.approx(expected, abs=1e-6)
    assert np.abs(expected - softmax(logits, hybrid.temperature)).max() > 0.05  # the TF-IDF term matters here
    assert hybrid.score(TEXTS).in_scope == pytest.approx(served.max(axis=1), abs=1e-6)  # OOD on the served logits
    teams_order = [label for label in hybrid.labels if label in LABELS]
    for prediction, row in zip(router.predict(TEXTS), expected):
        assert prediction.model_version == str(hybrid_version.pk)
        assert [prediction.scores[t] for t in teams_order] == pytest.approx(
            [row[hybrid.labels.index(t)] for t in teams_order], abs=1e-6
        )
