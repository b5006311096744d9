"""The teacher: the pretrained encoder with a mean-pooled classification head, fully fine-tuned or with LoRA."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import autocast, collate, device_of, length_sorted_batches, predict_logits
from .evaluate import macro_f1
from .model import MeanPooledClassifier, TeacherEnsemble
from .training import FitPlan, StepHook, fit, plan_for

LORA_TARGETS = ["query", "key", "value", "dense"]


def class_weights(labels: list[int], num_labels: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1 over present classes) so small teams are not drowned."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_labels * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def probe_head(
    model: MeanPooledClassifier, ids: list[list[int]], y: list[int], pad_id: int, *, balanced: bool, bf16: bool = False
) -> None:
    """Linear probe, then fine-tune: fit the head by logistic regression on the frozen encoder's vectors.

    A random head sends large, random gradients into the pretrained encoder for its first steps
    and distorts it most where labels are few; a head that already separates the teams does not.
    bf16: encode under bfloat16 autocast (a starting point for training needs no more precision).
    """
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(y))
    if len(present) < 2:
        return  # nothing to separate: keep the random head
    model.eval()
    device = device_of(model)
    vectors = np.zeros((len(ids), model.classifier.in_features), dtype=np.float32)
    for idx in length_sorted_batches(ids, 128):
        batch = (t.to(device) for t in collate([ids[i] for i in idx], pad_id))
        with autocast(bf16, device):
            vectors[idx] = model.pooled(*batch).float().cpu().numpy()
    probe = LogisticRegression(max_iter=1000, class_weight="balanced" if balanced else None).fit(vectors, y)
    weight = torch.zeros_like(model.classifier.weight)
    # Teams absent from train keep a very negative bias: the probe never saw them.
    bias = torch.full_like(model.classifier.bias, -10.0)
    coef, intercept = probe.coef_, probe.intercept_
    if len(present) == 2:  # sklearn's binary form: one row for the second class
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    for row, label in enumerate(probe.classes_):
        weight[label] = torch.from_numpy(coef[row]).float()
        bias[label] = float(intercept[row])
    model.classifier.weight.copy_(weight)
    model.classifier.bias.copy_(bias)


def build_teacher(config: TrainConfig, labels: list[str], *, probe: tuple | None = None) -> torch.nn.Module:
    """Load the base encoder with a fresh head (seeded; fitted by a linear probe on `probe` =
    (ids, y, pad_id) when config.head_init is "probe"); wrap it in LoRA adapters if asked."""
    model = MeanPooledClassifier.from_pretrained(config.base_model, len(labels), seed=config.seed).to(config.device)
    if probe is not None and config.head_init == "probe":
        ids, y, pad_id = probe
        probe_head(model, ids, y, pad_id, balanced=config.class_weighting == "balanced", bf16=config.bf16)
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
) -> tuple[MeanPooledClassifier | TeacherEnsemble, dict]:
    """Fine-tune config.teachers teachers (seeds seed, seed+1, ...); one, or their ensemble.

    History: the single teacher's fit history, or {"members": [one per teacher]}.
    """
    count = config.teachers
    members, histories = [], []
    for index in range(count):
        member_config = replace(config, seed=config.seed + index)
        prefix = f"teacher {index + 1}/{count}: " if count > 1 else ""

        def hook(fraction: float, message: str, index: int = index, prefix: str = prefix) -> None:
            on_step((index + fraction) / count, prefix + message)

        model, history = _train_one(member_config, labels, (train_ids, train_y), (val_ids, val_y), pad_id, hook)
        members.append(model)
        histories.append(history)
    if count == 1:
        return members[0], histories[0]
    return TeacherEnsemble(members).eval(), {"members": histories}


Split = tuple[list[list[int]], list[int]]  # (token ids, labels)


def _train_one(
    config: TrainConfig, labels: list[str], train: Split, val: Split, pad_id: int, on_step: StepHook
) -> tuple[MeanPooledClassifier, dict]:
    """Fine-tune on the train split, early-stop on val macro-F1; return a plain (merged) model."""
    (train_ids, train_y), (val_ids, val_y) = train, val
    model = build_teacher(config, labels, probe=(train_ids, train_y, pad_id))
    weights = class_weights(train_y, len(labels), config.class_weighting)
    weights = weights.to(config.device) if weights is not None else None
    targets = torch.tensor(train_y, dtype=torch.long, device=config.device)

    def batch_loss(m: torch.nn.Module, batch: list[int]) -> torch.Tensor:
        input_ids, mask = (t.to(config.device) for t in collate([train_ids[i] for i in batch], pad_id))
        logits = m(input_ids=input_ids, attention_mask=mask)
        return F.cross_entropy(logits, targets[batch], weight=weights, label_smoothing=config.label_smoothing)

    def validate() -> float:
        # Per-epoch history and early stopping: at training precision, like the teacher's other inference.
        logits = predict_logits(model, val_ids, pad_id, bf16=config.bf16)
        return macro_f1(logits.argmax(1), val_y, len(labels))

    history = fit(
        model,
        lengths=[len(x) for x in train_ids],
        batch_loss=batch_loss,
        plan=_plan(config),
        validate=validate if val_ids else None,
        on_step=on_step,
    )
    if config.method == "lora":
        model = model.merge_and_unload()
    return model.eval(), history


def _plan(config: TrainConfig) -> FitPlan:
    return plan_for(config, epochs=config.epochs, lr=config.lr, min_steps=config.min_teacher_steps)
