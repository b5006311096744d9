"""Fixtures for the pure-ML tests: a tiny random BERT and one shared pipeline run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ml_fixtures import make_tiny_base_model, tiny_config, tiny_examples

TINY_LABELS = ["billing", "accounts", "bugs"]


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """A random 2-layer, 64-wide BERT with a fast WordPiece tokenizer, built once per session."""
    return make_tiny_base_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_run(tiny_base_model, tmp_path_factory):
    """One full pipeline run on the tiny model, shared by the read-only end-to-end tests."""
    from finetune.ml.pipeline import run_pipeline

    examples, unlabelled = tiny_examples(TINY_LABELS)
    events = []
    result = run_pipeline(
        config=tiny_config(tiny_base_model),
        examples=examples,
        unlabelled=unlabelled,
        work_dir=tmp_path_factory.mktemp("runs") / "tiny",
        progress=lambda stage, percent, message: events.append((stage, percent, message)),
    )
    return result, events
