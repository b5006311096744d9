"""A short run on the real all-MiniLM-L6-v2 base model."""

from __future__ import annotations

import json

import pytest

from finetune.ml.artifacts import verify_checksums
from finetune.ml.config import TrainConfig
from finetune.ml.pipeline import run_pipeline
from tests.ml_fixtures import tiny_examples


@pytest.mark.real_model
def test_real_minilm_trains_distils_and_exports(tmp_path):
    """A few short epochs on MiniLM yields a 384-wide 3-layer int8 student that beats chance on test."""
    examples, unlabelled = tiny_examples(["accounts", "billing", "bugs"], per_label=20)
    config = TrainConfig(
        epochs=3, distil_epochs=4, min_per_team=4, lr=1e-4, distil_lr=1e-3, batch_size=8, min_teacher_steps=0
    )
    result = run_pipeline(config=config, examples=examples, unlabelled=unlabelled[:24], work_dir=tmp_path / "run")
    verify_checksums(result.artifact_dir)
    metrics = json.loads((result.artifact_dir / "metrics.json").read_text())
    assert "all-minilm" in metrics["config"]["base_model"].lower().replace("_", "-")
    assert metrics["parity"]["agreement"] >= 0.97
    assert result.test_accuracy > 0.5
    assert 5 < metrics["size_mb"]["model.onnx"] < 25
