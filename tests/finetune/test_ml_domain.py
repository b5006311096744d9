"""Domain-adaptive continued pretraining (finetune/ml/domain.py) on the tiny random BERT."""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoTokenizer

from finetune.ml.domain import adapted_config, mask_tokens, masked_lm
from finetune.ml.pipeline import run_pipeline
from tests.ml_fixtures import tiny_config, tiny_examples

from .conftest import TINY_LABELS


def test_masking_picks_only_real_tokens_and_at_least_one_per_text(tiny_base_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    rows = tokenizer(["invoice refund payment " * 6, "error", "password login reset please"], padding=True)
    input_ids, mask = torch.tensor(rows["input_ids"]), torch.tensor(rows["attention_mask"])
    inputs, labels = mask_tokens(input_ids, mask, tokenizer, torch.Generator().manual_seed(0))
    picked = labels != -100
    assert picked.any(1).all()  # even the one-word text teaches something
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))
    assert not (picked & special).any() and not (picked & (mask == 0)).any()
    assert torch.equal(labels[picked], input_ids[picked])
    assert torch.equal(inputs[~picked], input_ids[~picked])  # only picked tokens change
    assert (inputs[picked] == tokenizer.mask_token_id).float().mean() > 0.5


def test_a_missing_mlm_head_starts_as_an_identity_transform(tiny_base_model):
    model = masked_lm(str(tiny_base_model))  # the tiny base is a BertModel: no MLM head saved
    dense = model.cls.predictions.transform.dense
    assert torch.equal(dense.weight, torch.eye(dense.weight.shape[0]))
    assert (
        model.get_output_embeddings().weight.data_ptr() == model.base_model.embeddings.word_embeddings.weight.data_ptr()
    )


def test_mlm_steps_move_the_encoder_and_lower_the_loss(tiny_base_model, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    examples, _ = tiny_examples(TINY_LABELS)
    ids = tokenizer([e.text for e in examples])["input_ids"]
    config = tiny_config(tiny_base_model, mlm_steps=60, mlm_lr=5e-3)
    adapted, history = adapted_config(config, ids, tokenizer, tmp_path / "adapted", lambda f, m: None)
    assert adapted.base_model == str(tmp_path / "adapted") and history["steps"] >= 60
    before, after = AutoModel.from_pretrained(tiny_base_model), AutoModel.from_pretrained(adapted.base_model)
    moved = [
        name for name, p in after.state_dict().items() if not torch.allclose(p, before.state_dict()[name], atol=1e-6)
    ]
    assert any("encoder.layer" in name for name in moved)
    off, none = adapted_config(tiny_config(tiny_base_model), ids, tokenizer, tmp_path / "off", lambda f, m: None)
    assert off.base_model == str(tiny_base_model) and none is None and not (tmp_path / "off").exists()


def test_the_pipeline_trains_its_teacher_from_the_adapted_encoder(tiny_base_model, tmp_path):
    examples, unlabelled = tiny_examples(TINY_LABELS)
    config = tiny_config(tiny_base_model, mlm_steps=20, epochs=3, distil_epochs=3)
    events = []
    result = run_pipeline(
        config=config,
        examples=examples,
        unlabelled=unlabelled,
        work_dir=tmp_path / "run",
        progress=lambda stage, percent, message: events.append((stage, message)),
    )
    assert result.metrics["history"]["mlm"]["steps"] >= 20
    assert any(stage == "teacher" and message.startswith("domain adaptation (MLM)") for stage, message in events)
    assert result.metrics["config"]["base_model"] == str(tiny_base_model)  # the card names the real base
    assert not (result.artifact_dir / "_scratch").exists()
