"""Tokenised texts, length-grouped batches with dynamic padding, and batched inference."""

from __future__ import annotations

import random

import numpy as np
import torch

from .onnx_batches import length_sorted_batches, padded
from .window import DEFAULT_HEAD_SHARE, window_ids


def encode(tokenizer, texts: list[str], max_length: int, head_share: float = DEFAULT_HEAD_SHARE) -> list[list[int]]:
    """Token ids per text, windowed to max_length (head and tail, as the router does), unpadded."""
    if not texts:
        return []
    ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    return [window_ids(row, max_length, head_share) for row in ids]


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: random.Random, chunk: int = 512
) -> list[list[int]]:
    """Shuffle, sort by length within chunks, cut into batches, shuffle the batches.

    Neighbours in a batch have similar lengths, so dynamic padding wastes little compute;
    the outer shuffles keep the order random across epochs.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest member: (input_ids, attention_mask), both int64 (onnx_batches.padded as tensors)."""
    feed = padded(ids, pad_id)
    return torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])


def autocast(bf16: bool, device: torch.device | str = "cpu"):
    """bfloat16 autocast on ``device`` (cpu or cuda) when asked; otherwise the block runs in float32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)


def device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are: its batches go there."""
    return next(model.parameters()).device


@torch.no_grad()
def predict_logits(
    model, ids: list[list[int]], pad_id: int, batch_size: int = 128, on_batch=None, bf16: bool = False
) -> np.ndarray:
    """Logits for every text, computed in length-sorted batches and returned in input order.

    on_batch(fraction_done, message), if given, is called after every batch (progress, cancel).
    bf16: compute under bfloat16 autocast (the teacher's inference; see TrainConfig.precision).
    """
    model.eval()
    device = device_of(model)
    out = np.zeros((len(ids), model.num_labels), dtype=np.float32)
    done = 0
    for idx in length_sorted_batches(ids, batch_size):
        input_ids, mask = (t.to(device) for t in collate([ids[i] for i in idx], pad_id))
        with autocast(bf16, device):
            out[idx] = model(input_ids=input_ids, attention_mask=mask).float().cpu().numpy()
        done += len(idx)
        if on_batch is not None:
            on_batch(done / len(ids), f"scored {done}/{len(ids)} texts")
    return out
