"""Which language a chat line is in, and which languages a model's training tickets cover.

Detection is py3langid (its model ships inside the package, nothing is downloaded). It only calls a
language when the text carries enough letters and the guess is confident; otherwise it returns
None and the caller falls back to the routing model, because holding back an English customer on a
wrong guess costs more than routing one foreign line.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

UNKNOWN = "und"

# all-MiniLM-L6-v2 was pre-trained on English text, so English is understood without tickets.
BASE_LANGUAGES = ("en",)

# Widely written languages only: with the full model, rare look-alikes (Walloon, Nigerian Pidgin,
# Bikol) claim short English lines, and close neighbours (Galician, Catalan, Bulgarian) split a
# short Spanish or Russian line below the bar. A line in a language left out lands on a near
# neighbour, which is not English either.
CANDIDATE_LANGUAGES = (
    "en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "sv", "da", "no", "fi", "cs", "sk",
    "ro", "hu", "el", "ru", "uk", "hr", "sl", "sr", "lt", "lv", "et", "ar", "he", "fa",
    "hi", "bn", "ur", "zh", "ja", "ko", "vi", "th", "id", "ms", "tl", "sw", "af", "cy", "ga", "is",
)  # fmt: skip

# Letters counted in UTF-8 bytes, the unit py3langid's n-gram features see: a CJK character
# (3 bytes) carries about as much evidence as three Latin letters.
MIN_LETTER_BYTES = 10
# The lowest confidence with no English false call on 13,250 real English support lines.
MIN_CONFIDENCE = 0.75
# The language of a message shows in its opening; this bounds the cost of very long texts.
MAX_CHARS = 200

_identifier: Any = None
_identifier_lock = threading.Lock()


@dataclass(frozen=True)
class LanguageGuess:
    """A confident language call: an ISO 639-1 code and the detector's probability for it."""

    code: str
    confidence: float


def warm_language_detector() -> None:
    """Load the detector now (about 1.5 s), e.g. when a server loads its model, not on a request."""
    _language_identifier()


def detect_language(text: str) -> LanguageGuess | None:
    """The language of ``text``, or None when it is too short or ambiguous to call."""
    if not isinstance(text, str):
        raise TypeError(f"detect_language takes a str, got {type(text).__name__}")
    text = text[:MAX_CHARS]
    if not _has_enough_letters(text):
        return None
    code, confidence = _language_identifier().classify(text)
    if confidence < MIN_CONFIDENCE:
        return None
    return LanguageGuess(code=code, confidence=float(confidence))


def languages_summary(texts: list[str]) -> dict[str, int]:
    """Tickets per detected language, most frequent first; uncallable ones count under ``und``."""
    if not isinstance(texts, list):
        raise TypeError(f"languages_summary takes a list of str, got {type(texts).__name__}")
    counts: Counter[str] = Counter()
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
        guess = detect_language(text)
        counts[guess.code if guess else UNKNOWN] += 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def supported_languages(
    counts: dict[str, int],
    *,
    min_share: float = 0.05,
    min_count: int = 50,
    base_languages: tuple[str, ...] = BASE_LANGUAGES,
) -> list[str]:
    """Languages the model can route: the base model's, plus any with enough training tickets.

    A language qualifies with at least ``min_share`` of the tickets whose language was called
    (``und`` is left out of the total: short English tickets mostly land there) or at least
    ``min_count`` tickets.
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    if not _is_count(min_count) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    bad = {code: n for code, n in counts.items() if not _is_count(n)}
    if bad:
        raise ValueError(f"counts must be non-negative ints per language, got {bad}")
    called = {code: n for code, n in counts.items() if code != UNKNOWN and n > 0}
    total = sum(called.values())
    enough = {code for code, n in called.items() if n >= min_count or n / total >= min_share}
    return sorted(enough | set(base_languages))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _has_enough_letters(text: str) -> bool:
    seen = 0
    for char in text:
        if char.isalpha():
            seen += 1 if char < "\x80" else len(char.encode())
            if seen >= MIN_LETTER_BYTES:
                return True
    return False


def _language_identifier() -> Any:
    global _identifier
    if _identifier is None:
        with _identifier_lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                identifier.set_languages(list(CANDIDATE_LANGUAGES))
                _identifier = identifier
    return _identifier
