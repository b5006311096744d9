"""The teacher: the pretrained encoder with a mean-pooled classification head, fully fine-tuned or with LoRA."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import collate, predict_logits
from .evaluate import macro_f1
from .model import MeanPooledClassifier
from .training import FitPlan, StepHook, fit

LORA_TARGETS = ["query", "key", "value", "dense"]


def class_weights(labels: list[int], num_labels: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1 over present classes) so small teams are not drowned."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_labels * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def build_teacher(config: TrainConfig, labels: list[str]) -> torch.nn.Module:
    """Load the base encoder with a fresh head (seeded); wrap it in LoRA adapters if asked."""
    model = MeanPooledClassifier.from_pretrained(config.base_model, len(labels), seed=config.seed)
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        # The head is new: it trains in full beside the adapters.
        lora = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.1, target_modules=LORA_TARGETS, modules_to_save=["classifier"]
        )
        model = get_peft_model(model, lora)
    return model


def train_teacher(
    config: TrainConfig,
    labels: list[str],
    *,
    train_ids: list[list[int]],
    train_y: list[int],
    val_ids: list[list[int]],
    val_y: list[int],
    pad_id: int,
    on_step: StepHook,
) -> tuple[MeanPooledClassifier, dict]:
    """Fine-tune on the train split, early-stop on val macro-F1; return a plain (merged) model."""
    model = build_teacher(config, labels)
    weights = class_weights(train_y, len(labels), config.class_weighting)
    targets = torch.tensor(train_y, dtype=torch.long)

    def batch_loss(m: torch.nn.Module, batch: list[int]) -> torch.Tensor:
        input_ids, mask = collate([train_ids[i] for i in batch], pad_id)
        logits = m(input_ids=input_ids, attention_mask=mask)
        return F.cross_entropy(logits, targets[batch], weight=weights, label_smoothing=config.label_smoothing)

    def validate() -> float:
        return macro_f1(predict_logits(model, val_ids, pad_id).argmax(1), val_y, len(labels))

    plan = FitPlan(
        config.epochs, config.lr, config.weight_decay, config.batch_size, config.patience, config.seed,
        min_steps=config.min_teacher_steps, keep_best=config.keep_best_epoch,
    )
    history = fit(
        model,
        lengths=[len(x) for x in train_ids],
        batch_loss=batch_loss,
        plan=plan,
        validate=validate if val_ids else None,
        on_step=on_step,
    )
    if config.method == "lora":
        model = model.merge_and_unload()
    return model.eval(), history
