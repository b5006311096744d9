"""The real all-MiniLM-L6-v2 through the whole pipeline, on hand-written English support tickets."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from finetune.ml.artifact_format import NO_INTENT
from finetune.ml.artifacts import verify_checksums
from finetune.ml.config import TrainConfig
from finetune.ml.pipeline import LabelledText, run_pipeline

TICKETS = Path(__file__).resolve().parent.parent / "data" / "realistic_tickets.csv"
# Measured 0.90-0.925 held-out accuracy (36-37 of 40) for this config; chance is 0.25 with 4 teams.
MIN_HELD_OUT_ACCURACY = 0.8


def ticket_examples() -> list[LabelledText]:
    """20 training tickets per team (every fifth kept for validation) and 10 held-out test tickets."""
    rows = list(csv.DictReader(TICKETS.open(newline="", encoding="utf-8")))
    seen: Counter[str] = Counter()
    examples = []
    for row in rows:
        if row["split"] == "test":
            examples.append(LabelledText(row["text"], row["team"], "test"))
            continue
        seen[row["team"]] += 1
        examples.append(LabelledText(row["text"], row["team"], "val" if seen[row["team"]] % 5 == 0 else "train"))
    return examples


def served_predictions(artifact: Path, texts: list[str]) -> list[str]:
    """Labels as the router would serve them: the artifact's tokenizer.json and int8 model.onnx, fed by hand."""
    tokenizer = Tokenizer.from_file(str(artifact / "tokenizer.json"))
    session = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    labels = json.loads((artifact / "labels.json").read_text())
    predictions = []
    for text in texts:
        encoding = tokenizer.encode(text)
        feed = {"input_ids": np.array([encoding.ids]), "attention_mask": np.array([encoding.attention_mask])}
        predictions.append(labels[int(session.run(["logits"], feed)[0][0].argmax())])
    return predictions


@pytest.mark.real_model
def test_real_minilm_routes_held_out_support_tickets(tmp_path):
    """MiniLM fine-tuned, distilled to 3 layers and exported int8 routes unseen tickets far above chance.

    The parity gate runs at its default; held-out accuracy is measured here, on the served files.
    """
    examples = ticket_examples()
    config = TrainConfig(
        epochs=3,
        distil_epochs=4,
        teachers=1,
        batch_size=16,
        max_length=32,
        min_teacher_steps=0,
        min_distil_steps=0,
        threads=2,
    )
    result = run_pipeline(config=config, examples=examples, unlabelled=[], work_dir=tmp_path / "run")
    verify_checksums(result.artifact_dir)
    metrics = json.loads((result.artifact_dir / "metrics.json").read_text())
    assert "all-minilm" in metrics["config"]["base_model"].lower().replace("_", "-")
    assert metrics["parity"]["threshold"] == 0.97 <= metrics["parity"]["agreement"]
    held_out = [e for e in examples if e.split == "test"]
    assert metrics["data"]["test"] == len(held_out) == 40
    predicted = served_predictions(result.artifact_dir, [e.text for e in held_out])
    accuracy = np.mean([p == e.label for p, e in zip(predicted, held_out)])
    assert accuracy >= MIN_HELD_OUT_ACCURACY and result.test_accuracy >= MIN_HELD_OUT_ACCURACY
    assert 5 < metrics["size_mb"]["model.onnx"] < 25
    # The open world: greetings and thanks are the reserved no-intent label, the question a team.
    said = served_predictions(result.artifact_dir, ["Hi", "hello there!", "thanks a lot", "ok", held_out[0].text])
    assert said[:4].count(NO_INTENT) >= 3 and said[4] == held_out[0].label, said
