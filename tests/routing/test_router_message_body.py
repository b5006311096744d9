"""A format-4 artifact trained on message bodies: the router reads an e-mail as its body, as training did."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from finetune.ml.artifact_format import FORMAT_VERSION, read_serving, write_serving
from routing.loaded_model import LoadedModel
from tests.ml_fixtures import TOPICS, make_tiny_artifact, register_artifact

pytestmark = pytest.mark.django_db
LABELS = ["accounts", "billing", "bugs"]
BODY = f"my {TOPICS[1][0]} {TOPICS[1][1]} please"
# The signature speaks another team's words: read whole, the e-mail leans that way.
EMAIL = f"{BODY}\n-- \n{' '.join(TOPICS[2][:6])}\n{' '.join(TOPICS[2][6:12])}"


@pytest.fixture
def models(store):
    """The tiny artifact as trained (message_body on), and a copy that says its texts are read whole."""
    trained = make_tiny_artifact(store, LABELS, name="body")
    whole = make_tiny_artifact(store, LABELS, name="whole")
    write_serving(whole, replace(read_serving(whole), message_body=False))
    body_model = LoadedModel.from_version(register_artifact(trained, "body"))
    return body_model, LoadedModel.from_version(register_artifact(whole, "whole"))


def test_the_router_scores_an_email_as_its_message_body(models):
    """Signature and quoted text cannot move the answer; an artifact reading whole texts still reads them."""
    body_model, whole_model = models
    assert body_model.serving.format == FORMAT_VERSION and body_model.serving.message_body
    assert body_model.probabilities([EMAIL]) == pytest.approx(body_model.probabilities([BODY]), abs=1e-6)
    with_quote = f"{BODY}\n\nOn Mon, 3 Nov 2025, Support <help@example.com> wrote:\n> {' '.join(TOPICS[2][:8])}"
    assert body_model.probabilities([with_quote]) == pytest.approx(body_model.probabilities([BODY]), abs=1e-6)
    whole = whole_model.probabilities([EMAIL])[0]
    assert np.abs(whole - body_model.probabilities([EMAIL])[0]).max() > 0.01
