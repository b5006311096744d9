"""Text normalisation shared by import, ingest and the chat: one definition of 'duplicate'."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFKC, casefolded, whitespace collapsed: two texts that differ only so are duplicates."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def text_hash(text: str) -> str:
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()


def clean_text(text: str) -> str:
    """Strip surrounding whitespace and control characters; keep the text as the user wrote it."""
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return text.strip()
