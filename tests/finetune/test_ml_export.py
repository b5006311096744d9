"""ONNX export against an independent reference: torch's own forward vs onnxruntime fed by hand."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer

from finetune.ml.data import encode
from finetune.ml.errors import ParityError
from finetune.ml.export import check_parity, export_int8
from finetune.ml.model import MeanPooledClassifier
from tests.ml_fixtures import synthetic_tickets

LABELS = ["accounts", "billing", "bugs"]


def briefly_trained(base_model, tokenizer, rows) -> MeanPooledClassifier:
    """A few plain torch steps, so logits are decisive (a random head's near-ties say nothing)."""
    torch.manual_seed(0)
    model = MeanPooledClassifier.from_pretrained(str(base_model), len(LABELS), seed=0)
    batch = tokenizer([text for text, _ in rows], padding=True, return_tensors="pt")
    gold = torch.tensor([LABELS.index(label) for _, label in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), gold)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def reference_logits(model, tokenizer, texts) -> np.ndarray:
    """The torch model's own forward on one padded batch: no pipeline helper in between."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"]).numpy()


def onnx_run(path, tokenizer, texts) -> np.ndarray:
    """onnxruntime on the same padded batch, fed by hand."""
    batch = tokenizer(texts, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {
        "input_ids": batch["input_ids"].astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
    }
    return session.run(["logits"], feed)[0]


def test_export_matches_the_torch_forward_in_fp32_and_top1_in_int8(tiny_base_model, tmp_path, caplog):
    """fp32 ONNX logits equal torch's forward (1e-4) on a padded batch of varied lengths; int8 keeps top-1.

    After export the torch model is still in eval mode; the quantizer's per-tensor notes stay
    out of the logs (a job log should show real problems).
    """
    caplog.set_level(logging.INFO)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = briefly_trained(tiny_base_model, tokenizer, synthetic_tickets(LABELS, per_label=8, seed=0))
    texts = [text for text, _ in synthetic_tickets(LABELS, per_label=40, seed=1)]
    texts += ["hi", "please refund my invoice", "the app keeps crashing when i login to my account today " * 3]
    export_int8(
        model, encode(tokenizer, texts[:2], 64), tokenizer.pad_token_id, tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    )
    assert not model.training
    assert not [r.getMessage() for r in caplog.records if "Quantization parameters" in r.getMessage()]
    expected = reference_logits(model, tokenizer, texts)
    assert np.abs(expected).max() > 1.0  # decisive logits, so the comparisons below mean something
    assert np.abs(onnx_run(tmp_path / "fp32.onnx", tokenizer, texts) - expected).max() < 1e-4
    int8 = onnx_run(tmp_path / "int8.onnx", tokenizer, texts)
    assert (int8.argmax(1) == expected.argmax(1)).mean() >= 0.97
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size


def test_check_parity_raises_below_threshold():
    """Agreement below the threshold is a ParityError; at or above it returns the agreement."""
    torch_logits = np.array([[1.0, 0.0]] * 10)
    int8_logits = torch_logits.copy()
    int8_logits[0] = [0.0, 1.0]
    assert check_parity(torch_logits, int8_logits, 0.9) == 0.9
    with pytest.raises(ParityError, match="90.0%"):
        check_parity(torch_logits, int8_logits, 0.97)
