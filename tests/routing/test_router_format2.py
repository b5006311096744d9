"""A format-2 artifact from the real pipeline (tiny model): served with reasons, windowed, checked on load."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from finetune.ml.artifact_format import NO_INTENT
from finetune.ml.window import window_ids
from routing.loaded_model import ArtifactError, LoadedModel
from routing.models import ModelVersion
from tests.ml_fixtures import TOPICS, make_tiny_artifact

pytestmark = pytest.mark.django_db
LABELS = ["accounts", "billing", "bugs"]


@pytest.fixture
def format2_version(store):
    directory = make_tiny_artifact(store, LABELS, name="open")
    sha = hashlib.sha256((directory / "checksums").read_bytes()).hexdigest()
    labels = json.loads((directory / "labels.json").read_text())
    return ModelVersion.objects.create(artifact_dir="open", state=ModelVersion.State.ACTIVE, sha256=sha, labels=labels)


def test_format2_serves_teams_and_never_the_reserved_label(router, teams, format2_version):
    texts = [f"hello {' '.join(TOPICS[i][:3])} please" for i in range(3)] + ["hi", "thanks"]
    for prediction in router.predict(texts):
        assert NO_INTENT not in prediction.scores and set(prediction.scores) == set(LABELS)
        assert prediction.reason in ("routed", "no_intent", "out_of_scope", "low_confidence")
        assert (prediction.team is None) == (prediction.reason in ("no_intent", "out_of_scope"))
        assert prediction.team != NO_INTENT


def test_a_long_text_is_read_as_its_head_and_tail(format2_version):
    model = LoadedModel.from_version(format2_version)
    long_text = " ".join(TOPICS[0] * 30 + TOPICS[2] * 5)
    ids = model.tokenizer.encode(long_text).ids
    assert len(ids) > 64  # the tokenizer no longer truncates: the window does
    row = np.array([window_ids(ids, 64, 0.75)], dtype=np.int64)
    logits = model.session.run(["logits"], {"input_ids": row, "attention_mask": np.ones_like(row)})[0]
    expected = np.exp(logits / model.temperature - (logits / model.temperature).max())
    assert model.probabilities([long_text])[0] == pytest.approx(expected[0] / expected[0].sum(), rel=1e-4)


def test_a_newer_format_is_refused_on_load(store, format2_version):
    from finetune.ml.artifacts import write_checksums

    directory = store / "open"
    body = json.loads((directory / "serving.json").read_text())
    (directory / "serving.json").write_text(json.dumps({**body, "format": 99}))
    format2_version.sha256 = write_checksums(directory)
    with pytest.raises(ArtifactError, match="format 99, newer than this release reads"):
        LoadedModel.from_version(format2_version)
