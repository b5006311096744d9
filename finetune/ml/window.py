"""What of a long text the model reads: its message body, then the head and the tail of its token ids
and of its characters.

One function each for training (prepared.prepare, data.encode, baseline.fit_baseline) and serving
(the router, the served TF-IDF term), so both see the same text, tokens and characters. The ids
keep their special tokens: the head starts with [CLS], the tail ends with [SEP].

``message_body`` drops what an e-mail carries besides the request: quoted earlier messages, the
signature after its delimiter, a mobile footer and, in a long text, everything from a sign-off
line ("Kind regards,") on. Read whole, a short request in a signed e-mail with a disclaimer was
held back as out of scope or routed wrong three times in four (docs/experiments.md, long tickets).
"""

from __future__ import annotations

import re

DEFAULT_HEAD_SHARE = 0.75  # of the window kept from the start; the rest from the end
# What of a long ticket the TF-IDF term reads (characters, head and tail): an e-mail's worth, far
# more than the student's 64 tokens; and its CPU no longer grows with the text (100,000 characters
# cost 26 ms of TF-IDF, 2,000 about 1.6 ms).
TEXT_WINDOW_CHARS = 2000
_TRAILING_WORD, _LEADING_WORD = re.compile(r"\S+$"), re.compile(r"^\S+")

# From a line like these on, nothing is the customer's request: the signature delimiter ("-- ",
# RFC 3676; underscores), a mail app's footer, the header of a quoted earlier message.
_SIGNATURE = re.compile(r"(--|__+|—)\s*|(sent from my|get outlook for) .*", re.IGNORECASE)
_QUOTE_HEADER = re.compile(
    r"(on .{4,200} wrote|le .{4,200} a écrit|am .{4,200} schrieb.*|el .{4,200} escribió|il giorno .{4,200} ha scritto"
    r"|op .{4,200} schreef.*|w dniu .{4,200} pisze|em .{4,200} escreveu)\s*:|-+ *original message *-+",
    re.IGNORECASE,
)
_OUTLOOK_HEADER = re.compile(r"(sent|date|to|subject)\s*:", re.IGNORECASE)
# A line that is only a sign-off, in the languages the no-intent corpus greets in.
_SIGN_OFF = re.compile(
    r"((kind|best|warm|warmest|many|with)\s+)?(regards|wishes|thanks|thanks again|thank you|cheers|sincerely"
    r"|yours( sincerely| truly| faithfully)?|best|thx|mit freundlichen grüßen|viele grüße|beste grüße|cordialement"
    r"|bien à vous|saludos|atentamente|un saludo|cordiali saluti|distinti saluti|atenciosamente|cumprimentos"
    r"|met vriendelijke groet|groeten|pozdrawiam|z poważaniem)[\s,.!]*",
    re.IGNORECASE,
)
# A sign-off line ends the body only in a text this long: in a short chat message "thanks" on a
# line of its own may come before another question.
SIGN_OFF_MIN_CHARS = 300
# A sentence ends at a line break, at ., !, ?, … followed by white space, and after a CJK stop.
_SENTENCE_END = re.compile(r"\s*\n\s*|(?<=[.!?…])\s+|(?<=[。！？])\s*")


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


def message_body(text: str) -> str:
    """The request of a ticket or e-mail: ``text`` without quoted lines (">"), and cut before its
    signature delimiter, mail-app footer or quoted-message header (or, in a text of at least
    SIGN_OFF_MIN_CHARS, before a sign-off line with text above it). A text of one line, or one
    that would be left empty, comes back unchanged."""
    if "\n" not in text:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _SIGNATURE.fullmatch(stripped) or _QUOTE_HEADER.fullmatch(stripped) or _outlook_header(lines, index):
            break
        if len(text) >= SIGN_OFF_MIN_CHARS and any(kept) and _SIGN_OFF.fullmatch(stripped):
            break
        if not stripped.startswith(">"):
            kept.append(line)
    body = "\n".join(kept).strip()
    return body or text


def _outlook_header(lines: list[str], index: int) -> bool:
    """A "From: ..." line followed within four lines by "Sent:" / "Date:" / "To:" / "Subject:"."""
    if not lines[index].strip().lower().startswith("from:"):
        return False
    return any(_OUTLOOK_HEADER.match(line.strip()) for line in lines[index + 1 : index + 5])


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, in order (see _SENTENCE_END); blank ones dropped. A text without a
    sentence end is one sentence."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]
