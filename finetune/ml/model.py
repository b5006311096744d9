"""The classifier trained and served: a pretrained encoder, mean pooling, a linear head.

all-MiniLM-L6-v2 was trained as a sentence encoder through the mean of its token vectors; its
[CLS] pooler was never trained for that. Fine-tuning through the mean (the model's own
pooling) is what this module does; both teacher and student share the class, the student
being the teacher's embeddings, first k layers and head.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import AutoModel
from transformers.utils import logging as hf_logging


class MeanPooledClassifier(nn.Module):
    """(input_ids, attention_mask) -> logits [batch, num_labels]; padding is left out of the mean."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    @classmethod
    def from_pretrained(cls, base_model: str, num_labels: int, *, seed: int) -> MeanPooledClassifier:
        """The base encoder (its unused [CLS] pooler dropped) with a fresh head initialised from `seed`."""
        torch.manual_seed(seed)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a "Loading weights" bar per run is noise in a job log
        try:
            encoder = AutoModel.from_pretrained(base_model)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # loaded, then dropped: no "unexpected weights" report on every run
        model = cls(encoder, num_labels, dropout=getattr(encoder.config, "hidden_dropout_prob", 0.1))
        std = getattr(encoder.config, "initializer_range", 0.02)
        nn.init.normal_(model.classifier.weight, std=std)
        nn.init.zeros_(model.classifier.bias)
        return model

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    @property
    def num_layers(self) -> int:
        return len(self.encoder.encoder.layer)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The text vectors the head sees: the mean of the token vectors, padding left out."""
        # Token types are all zero for single texts; passing them keeps the ONNX graph free of
        # a buffer lookup that the legacy exporter would bake in at the sample's shape.
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def freeze_word_embeddings(self) -> None:
        """Keep the pretrained token vectors fixed: the optimizer then skips the largest matrix."""
        self.encoder.get_input_embeddings().weight.requires_grad_(False)

    def sparse_word_embeddings(self, sparse: bool) -> None:
        """Token-vector gradients as sparse rows (only the batch's tokens), for a lazy optimizer;
        switched off again before export, which wants a plain embedding."""
        self.encoder.get_input_embeddings().sparse = sparse

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # float32 logits even under bf16 autocast: softmax, KL and cross-entropy need the precision.
        return self.classifier(self.dropout(self.pooled(input_ids, attention_mask))).float()

    def truncated(self, layers: int) -> MeanPooledClassifier:
        """A copy keeping the embeddings, the first `layers` transformer layers and the head."""
        if not 1 <= layers <= self.num_layers:
            raise ValueError(f"a student needs 1..{self.num_layers} layers, got {layers}")
        student = copy.deepcopy(self)
        student.encoder.encoder.layer = nn.ModuleList(list(student.encoder.encoder.layer)[:layers])
        student.encoder.config.num_hidden_layers = layers
        return student


class TeacherEnsemble(nn.Module):
    """Teachers fine-tuned from different seeds answering as one: the mean of their logits.

    The mean beats any single member (figures in docs/experiments.md); the student is still
    built from the first member's layers.
    """

    def __init__(self, members: list[MeanPooledClassifier]):
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def num_labels(self) -> int:
        return self.members[0].num_labels

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(input_ids, attention_mask) for member in self.members]).mean(0)

    def truncated(self, layers: int) -> MeanPooledClassifier:
        return self.members[0].truncated(layers)
