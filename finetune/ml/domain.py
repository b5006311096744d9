"""Domain-adaptive continued pretraining: masked-language-model steps on the helpdesk's own texts
before the teacher is fine-tuned (issue 15, item 3; off unless ``mlm_steps`` > 0).

A base model pre-trained on general text may not know a helpdesk's words (product names, error
codes, internal jargon). A few hundred MLM steps on the ticket texts, labelled and unlabelled,
move the encoder toward them (Gururangan et al. 2020, "Don't stop pretraining"). Sentence-embedding
models such as all-MiniLM-L6-v2 ship without an MLM head: its transform then starts as the
identity, so from the first step it predicts the token whose embedding is nearest the encoder's
output (the decoder is tied to the word embeddings) instead of sending random gradients back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM
from transformers import logging as hf_logging

from .config import TrainConfig
from .data import collate
from .training import StepHook, fit, plan_for

MASK_SHARE = 0.15  # of the non-special tokens picked per text (BERT's rate)


def adapted_config(
    config: TrainConfig, ids: list[list[int]], tokenizer, out_dir: Path, on_step: StepHook
) -> tuple[TrainConfig, dict | None]:
    """The config the teacher trains from: ``config`` itself, or, with ``mlm_steps`` > 0, one whose
    base model is the encoder after MLM steps on ``ids`` (saved to ``out_dir``); plus its history."""
    if config.mlm_steps <= 0 or not ids:
        return config, None
    model = masked_lm(config.base_model).to(config.device)
    history = continue_pretraining(config, model, ids, tokenizer, on_step)
    model.base_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return replace(config, base_model=str(out_dir)), history


def masked_lm(base_model: str) -> torch.nn.Module:
    """The base model with an MLM head: its own, or a tied one whose transform starts as the identity."""
    quiet = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized weights" is expected for embedding models
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(base_model, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(quiet)
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if predictions is not None and any(key.startswith("cls.predictions.transform") for key in info["missing_keys"]):
        with torch.no_grad():
            dense = predictions.transform.dense
            dense.weight.copy_(torch.eye(dense.weight.shape[0]))
            dense.bias.zero_()
        logging.getLogger(__name__).info("MLM head initialised as a tied identity transform")
    return model


def mask_tokens(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for MLM: MASK_SHARE of the real non-special tokens picked (at least one per
    text); of those 80 % become the mask token, 10 % a random token, 10 % stay; labels -100 elsewhere."""
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids, dtype=input_ids.dtype))
    candidates = attention_mask.bool() & ~special
    draw = torch.rand(input_ids.shape, generator=generator)
    picked = candidates & (draw < MASK_SHARE)
    none = candidates.any(1) & ~picked.any(1)
    if none.any():  # a short text still teaches something: its likeliest candidate
        best = torch.where(candidates, draw, torch.full_like(draw, 2.0)).argmin(1)
        picked[none.nonzero().squeeze(1), best[none]] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[picked & (action < 0.8)] = tokenizer.mask_token_id
    swap = picked & (action >= 0.8) & (action < 0.9)
    inputs[swap] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[swap]
    return inputs, labels


def continue_pretraining(config: TrainConfig, model, ids: list[list[int]], tokenizer, on_step: StepHook) -> dict:
    """At least ``mlm_steps`` MLM steps (whole passes over ``ids``); logits only at masked positions."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoder = model.base_model
    # BERT-style models: the whole head (transform + tied decoder); others: the decoder alone.
    head = model.cls if hasattr(model, "cls") else model.get_output_embeddings()

    def batch_loss(m: torch.nn.Module, batch: list[int]) -> torch.Tensor:
        input_ids, mask = collate([ids[i] for i in batch], pad_id)
        inputs, labels = mask_tokens(input_ids, mask, tokenizer, generator)
        hidden = encoder(input_ids=inputs.to(config.device), attention_mask=mask.to(config.device)).last_hidden_state
        where = labels != -100
        logits = head(hidden[where.to(config.device)])
        return torch.nn.functional.cross_entropy(logits.float(), labels[where].to(config.device))

    plan = plan_for(config, epochs=1, lr=config.mlm_lr, min_steps=config.mlm_steps)  # no validation, no early stop
    return fit(model, lengths=[len(x) for x in ids], batch_loss=batch_loss, plan=plan, validate=None, on_step=on_step)
