"""What of a long text the model reads: the head and the tail of its token ids.

One function for training (data.encode) and serving (the router), so both see the same tokens.
The ids keep their special tokens: the head starts with [CLS], the tail ends with [SEP].
"""

from __future__ import annotations

DEFAULT_HEAD_SHARE = 0.75  # of the window kept from the start; the rest from the end


def window_ids(ids: list[int], max_length: int, head_share: float = DEFAULT_HEAD_SHARE) -> list[int]:
    """`ids` when it fits; else its first round(max_length * head_share) and its last ids, max_length in all."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if not 0 < head_share <= 1:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    if len(ids) <= max_length:
        return list(ids)
    head = min(max(1, round(max_length * head_share)), max_length - 1)
    return list(ids[:head]) + list(ids[len(ids) - (max_length - head) :])
