"""The router serves the Mahalanobis + max-logit out-of-scope score exactly as the training pipeline calibrated it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from transformers import AutoTokenizer

from finetune.ml.artifact_format import OodCheck
from finetune.ml.data import encode
from finetune.ml.onnx_batches import SERVE_BATCH
from finetune.ml.ood import fit_mahalanobis, in_scope_scores
from finetune.ml.open_world import onnx_outputs
from routing.loaded_model import LoadedModel, TeamInfo, artifact_dir
from tests.ml_fixtures import FILLER, TOPICS, synthetic_tickets
from tests.routing.conftest import LABELS_V1

pytestmark = pytest.mark.django_db
TEXTS = [" ".join(TOPICS[i % 3][:3] + FILLER[i : i + 3]) for i in range(6)] + ["hi thanks", "delivery package order"]


@pytest.fixture
def mixed_model(install_version):
    """The tiny v1 model with a Mahalanobis + max-logit check fitted, as the pipeline fits it, on its own tickets.

    (The tiny pipeline has too few tickets per dimension for the fit and ships the max-logit fallback.)
    """
    version = install_version("v1")
    model = LoadedModel.from_version(version)
    tokenizer = AutoTokenizer.from_pretrained(artifact_dir(version))
    tickets = synthetic_tickets(LABELS_V1, per_label=60, seed=3)
    ids = encode(tokenizer, [text for text, _ in tickets], model.serving.max_length, model.serving.window_head)
    _, pooled = onnx_outputs(model.session, ids, model.pad_id)
    means, whitener = fit_mahalanobis(pooled, np.array([LABELS_V1.index(label) for _, label in tickets]), 0.3)
    check = OodCheck("mahalanobis_max_logit", 0.0, 1.0, means, whitener, mix=(0.05, 1.0))
    return replace(model, serving=replace(model.serving, ood=check)), tokenizer


def test_served_scores_equal_the_training_time_scores(mixed_model):
    """LoadedModel.score, one text or a batch, gives the pipeline's scores for the same texts."""
    model, tokenizer = mixed_model
    check = model.serving.ood
    ids = encode(tokenizer, TEXTS, model.serving.max_length, model.serving.window_head)

    def outputs(rows):
        return onnx_outputs(model.session, rows, model.pad_id)

    # int8 activations are quantised per batch, so each side scores the same batches: one text, then all.
    alone = np.array([in_scope_scores(check, *outputs([row]))[0] for row in ids])
    assert np.array([model.score([text]).in_scope[0] for text in TEXTS]) == pytest.approx(alone, rel=1e-5)
    assert model.score(TEXTS).in_scope == pytest.approx(in_scope_scores(check, *outputs(ids)), rel=1e-5)
    assert len(set(np.round(alone, 3))) > 1  # the texts are told apart, not all one value


def test_the_calibrated_threshold_decides_out_of_scope(mixed_model):
    """Below the check's threshold a text is out_of_scope with no team; above it, it is routed."""
    model, _ = mixed_model
    teams = {slug: TeamInfo(name=slug, triage_threshold=0.0) for slug in LABELS_V1}
    texts = TEXTS[:6]
    for threshold, expect_out in ((np.inf, True), (-np.inf, False)):
        strict = replace(model, serving=replace(model.serving, ood=replace(model.serving.ood, threshold=threshold)))
        reasons = {p.reason for p in strict.predict(texts, teams=teams, default_threshold=0.0)} - {"no_intent"}
        assert reasons == ({"out_of_scope"} if expect_out else {"routed"})


def test_a_batch_beyond_one_onnx_call_comes_back_in_input_order(install_version):
    """More texts than SERVE_BATCH, lengths mixed: scored in length-sorted runs, each text's
    probabilities still land on its own row (as scored alone, to int8's per-batch rounding)."""
    model = LoadedModel.from_version(install_version("v1"))
    texts = [" ".join((TOPICS[i % 3] * 4)[: 1 + (7 * i) % 11] + FILLER[: i % 5]) for i in range(SERVE_BATCH * 2 + 3)]
    batch = model.probabilities(texts)
    alone = np.concatenate([model.probabilities([text]) for text in texts])
    assert batch.argmax(1).tolist() == alone.argmax(1).tolist()
    assert np.abs(batch - alone).max() < 0.02
    assert len(set(batch.argmax(1).tolist())) >= 3  # the topics differ row to row: a misplaced row would show
