"""Distillation: a first-k-layer copy of the teacher learns the teacher's soft labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import collate, predict_logits
from .evaluate import macro_f1
from .model import MeanPooledClassifier
from .training import FitPlan, StepHook, fit, plan_for


def distil_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    gold: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha·KL(teacher‖student at T)·T² + (1−alpha)·CE(gold); rows with gold = −1 get the KL term only."""
    log_p = F.log_softmax(student_logits / temperature, dim=-1)
    q = F.softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_p, q, reduction="none").sum(-1) * temperature**2
    has_gold = gold >= 0
    ce = F.cross_entropy(student_logits, gold.clamp(min=0), reduction="none") * has_gold
    return (alpha * kl + (1 - alpha) * ce).mean()


def train_student(
    config: TrainConfig,
    teacher: MeanPooledClassifier,
    *,
    ids: list[list[int]],
    teacher_logits: np.ndarray,
    gold: list[int],
    val_ids: list[list[int]],
    val_y: list[int],
    pad_id: int,
    on_step: StepHook,
) -> tuple[MeanPooledClassifier, dict]:
    """Train the student on every text (labelled and not) against cached teacher logits.

    The student starts as the teacher's embeddings, first k layers and head; unless frozen, its
    word embeddings train as sparse rows (see ``training._optimizers``).
    """
    torch.manual_seed(config.seed)
    student = _student_from(teacher, config)
    batch_loss = _distil_batch_loss(config, ids, teacher_logits, gold, pad_id)

    def validate() -> float:
        return macro_f1(predict_logits(student, val_ids, pad_id).argmax(1), val_y, student.num_labels)

    try:
        history = fit(
            student,
            lengths=[len(x) for x in ids],
            batch_loss=batch_loss,
            plan=_plan(config),
            validate=validate if val_ids else None,
            on_step=on_step,
        )
    finally:
        student.sparse_word_embeddings(False)  # a plain embedding for export, whatever happened
    return student.eval(), history


def _student_from(teacher: MeanPooledClassifier, config: TrainConfig) -> MeanPooledClassifier:
    """The teacher's embeddings, first k layers and head, trainable (word embeddings frozen or sparse)."""
    student = teacher.truncated(config.student_layers)
    student.requires_grad_(True)  # a merged LoRA teacher comes back with its base weights frozen
    if config.student_freeze_embeddings:
        student.freeze_word_embeddings()
    else:
        student.sparse_word_embeddings(True)
    return student


def _distil_batch_loss(
    config: TrainConfig, ids: list[list[int]], teacher_logits: np.ndarray, gold: list[int], pad_id: int
):
    """The loss of a batch of item indices: the student against the cached teacher logits and gold labels."""
    soft = torch.from_numpy(teacher_logits).to(config.device)
    gold_t = torch.tensor(gold, dtype=torch.long, device=config.device)

    def batch_loss(m: torch.nn.Module, batch: list[int]) -> torch.Tensor:
        input_ids, mask = (t.to(config.device) for t in collate([ids[i] for i in batch], pad_id))
        logits = m(input_ids=input_ids, attention_mask=mask)
        return distil_loss(logits, soft[batch], gold_t[batch], temperature=config.kd_temperature, alpha=config.kd_alpha)

    return batch_loss


def _plan(config: TrainConfig) -> FitPlan:
    return plan_for(config, epochs=config.distil_epochs, lr=config.distil_lr, min_steps=config.min_distil_steps)
