"""Text rules shared by import, ingest, routing and the chat: what a valid text is, one definition of 'duplicate'."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError

_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFKC, casefolded, whitespace collapsed: two texts that differ only so are duplicates."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def text_hash(text: str) -> str:
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()


def clean_text(text: str) -> str:
    """Strip surrounding whitespace and control characters; keep the text as the user wrote it."""
    if text.isprintable():  # no category C character (nor other white space than " "): nothing to drop
        return text.strip()
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return text.strip()


def ticket_text_validate(*, text: object, limit: int | None = None) -> str:
    """Return the cleaned text or raise a SwitchboardError saying what is wrong with it.

    ``limit`` (characters) defaults to MAX_TEXT_CHARS; over it the answer is 413 naming the limit.
    """
    if not isinstance(text, str):
        raise SwitchboardError(f"text must be a string, got {type(text).__name__}.", code="invalid_text")
    cleaned = clean_text(text)
    if not cleaned:
        raise SwitchboardError("text is empty: send the customer's message.", code="empty_text")
    limit = int(setting("MAX_TEXT_CHARS") if limit is None else limit)
    if len(cleaned) > limit:
        raise SwitchboardError(
            f"text is {len(cleaned)} characters; the limit is {limit}.", code="text_too_long", http_status=413
        )
    return cleaned
