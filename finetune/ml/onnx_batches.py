"""ONNX inference over many token-id rows: one definition for training's checks and for serving.

Rows are sorted by length and cut into batches, so each batch pads to nearly its own longest
row. Padding, not batching, is what makes a batch dear: on the 3-layer int8 student, 15 tokens
on average, one thread, 16 rows in arrival order cost 1.19 ms of CPU per text and 16 sorted rows
0.41 ms, against 0.71 ms for one row alone (bench/batch_cost.py; docs/benchmarks.md, round 11,
"scoring a batch"). Numpy and onnxruntime only: the serving processes never import torch.
"""

from __future__ import annotations

import numpy as np

# Rows per ONNX call when serving: per-text cost was flat from 8 to 16 sorted rows and rose at 32.
SERVE_BATCH = 16


def length_sorted_batches(ids: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indexes of `ids` sorted by length and cut into batches: inference pads each batch little."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded(rows: list[list[int]], pad_id: int) -> dict[str, np.ndarray]:
    """The model's feed for these rows, padded to the longest: input_ids and attention_mask (int64)."""
    width = max(len(row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)], mask[index, : len(row)] = row, 1
    return {"input_ids": input_ids, "attention_mask": mask}


def onnx_run(session, rows: list[list[int]], pad_id: int, names: list[str], batch_size: int) -> list[np.ndarray]:
    """The named outputs of the ONNX session for every row, in input order (float32 outputs)."""
    if not rows:  # empty arrays of the declared widths, as the callers' arithmetic expects
        declared = {output.name: output.shape for output in session.get_outputs()}
        return [np.zeros((0, *declared[name][1:]), dtype=np.float32) for name in names]
    if len(rows) == 1:  # one chat message or API text: nothing to sort or put back
        return session.run(names, padded(rows, pad_id))
    out: list[np.ndarray] = []
    for idx in length_sorted_batches(rows, batch_size):
        outputs = session.run(names, padded([rows[i] for i in idx], pad_id))
        if not out:
            out = [np.empty((len(rows), *value.shape[1:]), dtype=value.dtype) for value in outputs]
        for target, value in zip(out, outputs):
            target[idx] = value
    return out
