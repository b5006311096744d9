"""What of a long text the model reads: the head and the tail of its token ids, and of its characters.

One function each for training (data.encode, baseline.fit_baseline) and serving (the router, the
served TF-IDF term), so both see the same tokens and the same characters. The ids keep their special
tokens: the head starts with [CLS], the tail ends with [SEP].
"""

from __future__ import annotations

import re

DEFAULT_HEAD_SHARE = 0.75  # of the window kept from the start; the rest from the end
# What of a long ticket the TF-IDF term reads (characters, head and tail): an e-mail's worth, far
# more than the student's 64 tokens; and its CPU no longer grows with the text (100,000 characters
# cost 26 ms of TF-IDF, 2,000 about 1.6 ms).
TEXT_WINDOW_CHARS = 2000
_TRAILING_WORD, _LEADING_WORD = re.compile(r"\S+$"), re.compile(r"^\S+")


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


def window_text(text: str, max_chars: int, head_share: float = DEFAULT_HEAD_SHARE) -> str:
    """`text` when it fits; else its first and last characters (head_share of max_chars from the
    start), joined by a newline, at most max_chars in all. A word cut at either edge is left out,
    unless it is all that edge holds."""
    if max_chars < 2:
        raise ValueError(f"max_chars must be at least 2, got {max_chars}")
    if not 0 < head_share <= 1:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    if len(text) <= max_chars:
        return text
    head = min(max(1, round(max_chars * head_share)), max_chars - 2)
    tail_start = len(text) - (max_chars - head - 1)
    start, end = text[:head], text[tail_start:]
    if not text[head].isspace():
        start = _TRAILING_WORD.sub("", start) or start
    if not text[tail_start - 1].isspace():
        end = _LEADING_WORD.sub("", end) or end
    return f"{start}\n{end}"
