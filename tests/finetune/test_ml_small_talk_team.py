"""Labelled data wins over the shipped no-intent corpus: a helpdesk with a small-talk team (as CLINC150's
own ``small_talk`` domain is) gets greetings and thanks routed to that team, not held back as no intent."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from finetune.ml.artifact_format import NO_INTENT
from finetune.ml.pipeline import LabelledText, run_pipeline
from tests.ml_fixtures import TOPICS, tiny_config, tiny_examples

# The tiny model's own words for small talk (tests.ml_fixtures FILLER): no topic word among them.
GREETINGS = ["hi", "hello", "hey", "thanks", "please", "again", "today", "now", "just", "really"]


def _small_talk(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(GREETINGS, 4)) for _ in range(count)]


def _top_labels(artifact_dir, labels: list[str], texts: list[str]) -> list[str]:
    session = ort.InferenceSession(str(artifact_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(artifact_dir / "tokenizer.json"))
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.array([e.ids + [0] * (width - len(e.ids)) for e in encodings], dtype=np.int64)
    mask = np.array([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encodings], dtype=np.int64)
    logits = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    return [labels[i] for i in logits.argmax(1)]


def test_a_small_talk_team_gets_greetings_and_thanks(tiny_base_model, tmp_path):
    """Greeting and thanks tickets labelled to a team train that team; such texts route there, the
    model keeps its no-intent label for the corpus it still trains on."""
    examples, unlabelled = tiny_examples(["billing", "accounts"])
    examples += [LabelledText(text, "small_talk", "") for text in _small_talk(24, seed=1)]
    result = run_pipeline(
        config=tiny_config(tiny_base_model), examples=examples, unlabelled=unlabelled, work_dir=tmp_path / "run"
    )
    assert NO_INTENT in result.labels and "small_talk" in result.labels
    unseen = [text for text in _small_talk(12, seed=2) if text not in {e.text for e in examples}]
    assert _top_labels(result.artifact_dir, result.labels, unseen) == ["small_talk"] * len(unseen)
    # the topic teams keep their questions (synthetic_tickets gives the i-th sorted label the i-th topic)
    questions = [f"please {' '.join(TOPICS[i][:3])}" for i in range(2)]
    assert _top_labels(result.artifact_dir, result.labels, questions) == ["accounts", "billing"]
