"""finetune.ml.onnx_batches: batched ONNX inference sorted by length, answered in input order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from finetune.ml.onnx_batches import onnx_run, padded


class RecordingSession:
    """Stands in for an InferenceSession: per row, the sum of its real ids and its length; records each feed."""

    def __init__(self):
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, names, feed):
        self.feeds.append(feed)
        mask = feed["attention_mask"]
        values = {"total": (feed["input_ids"] * mask).sum(1, keepdims=True), "length": mask.sum(1)}
        return [values[name] for name in names]

    def get_outputs(self):
        return [SimpleNamespace(name="total", shape=["batch", 1]), SimpleNamespace(name="length", shape=["batch"])]


ROWS = [[5] * 30, [1], [2, 2], [7] * 29, [3, 3, 3], [9] * 12]


def test_outputs_come_back_in_input_order():
    session = RecordingSession()
    total, length = onnx_run(session, ROWS, pad_id=0, names=["total", "length"], batch_size=2)
    assert total[:, 0].tolist() == [sum(row) for row in ROWS]
    assert length.tolist() == [len(row) for row in ROWS]


def test_batches_are_cut_from_rows_sorted_by_length():
    """Short rows batch with short ones: three batches of two pad to 2, 12 and 30, not to 30 each."""
    session = RecordingSession()
    onnx_run(session, ROWS, pad_id=0, names=["total"], batch_size=2)
    assert [feed["input_ids"].shape for feed in session.feeds] == [(2, 2), (2, 12), (2, 30)]


def test_no_rows_give_empty_outputs_of_the_declared_widths():
    total, length = onnx_run(RecordingSession(), [], pad_id=0, names=["total", "length"], batch_size=2)
    assert total.shape == (0, 1) and length.shape == (0,)


def test_padded_fills_with_the_pad_id_and_masks_it_out():
    feed = padded([[4, 5, 6], [7]], pad_id=1)
    assert feed["input_ids"].tolist() == [[4, 5, 6], [7, 1, 1]]
    assert feed["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert feed["input_ids"].dtype == feed["attention_mask"].dtype == np.int64
