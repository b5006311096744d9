"""window_ids: short texts untouched; long ones keep head and tail, special tokens included."""

import pytest

from finetune.ml.window import window_ids


def test_short_ids_are_unchanged():
    assert window_ids([101, 5, 6, 102], 64) == [101, 5, 6, 102]


def test_long_ids_keep_the_head_and_the_tail():
    ids = [101, *range(1000, 1200), 102]
    windowed = window_ids(ids, 64, 0.75)
    assert len(windowed) == 64
    assert windowed[:48] == ids[:48] and windowed[48:] == ids[-16:]
    assert windowed[0] == 101 and windowed[-1] == 102


@pytest.mark.parametrize("head_share", [1.0, 0.01])
def test_the_window_always_keeps_both_ends(head_share):
    windowed = window_ids(list(range(100)), 10, head_share)
    assert len(windowed) == 10 and windowed[0] == 0 and windowed[-1] == 99


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_length"):
        window_ids([1, 2, 3], 1)
    with pytest.raises(ValueError, match="head_share"):
        window_ids([1, 2, 3], 2, 0)
