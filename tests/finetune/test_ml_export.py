"""ONNX export: the eval-mode pitfall, dynamic shapes, int8 parity with torch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from finetune.ml.data import encode, predict_logits
from finetune.ml.errors import ParityError
from finetune.ml.export import check_parity, export_int8, onnx_logits, onnx_session
from finetune.ml.model import MeanPooledClassifier


def test_export_keeps_torch_model_in_eval_and_matches_it(tiny_base_model, tmp_path, caplog):
    """After export the torch model is still in eval mode and int8 ONNX agrees on varied lengths.

    The quantizer's per-tensor notes stay out of the logs (a job log should show real problems).
    """
    caplog.set_level(logging.INFO)
    model = MeanPooledClassifier.from_pretrained(str(tiny_base_model), 3, seed=0).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    texts = ["hi", "please refund my invoice", "the app keeps crashing when i login to my account today"] * 4
    ids = encode(tokenizer, texts, 64)
    export_int8(model, ids, tokenizer.pad_token_id, tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    assert not model.training
    assert not [r.getMessage() for r in caplog.records if "Quantization parameters" in r.getMessage()]
    torch_logits = predict_logits(model, ids, tokenizer.pad_token_id)
    assert np.allclose(torch_logits, predict_logits(model, ids, tokenizer.pad_token_id))
    fp32 = onnx_logits(onnx_session(tmp_path / "fp32.onnx", 1), ids, tokenizer.pad_token_id, 3)
    assert np.allclose(fp32, torch_logits, atol=1e-4)
    int8 = onnx_logits(onnx_session(tmp_path / "int8.onnx", 1), ids, tokenizer.pad_token_id, 3)
    assert np.abs(int8 - torch_logits).max() < 0.2
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size


def test_check_parity_raises_below_threshold():
    """Agreement below the threshold is a ParityError; at or above it returns the agreement."""
    torch_logits = np.array([[1.0, 0.0]] * 10)
    int8_logits = torch_logits.copy()
    int8_logits[0] = [0.0, 1.0]
    assert check_parity(torch_logits, int8_logits, 0.9) == 0.9
    with pytest.raises(ParityError, match="90.0%"):
        check_parity(torch_logits, int8_logits, 0.97)
