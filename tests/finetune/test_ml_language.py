"""Language detection on short chat lines and the supported-language rule, on the real detector."""

from __future__ import annotations

import threading

import pytest

from finetune.ml import language
from finetune.ml.language import (
    UNKNOWN,
    LanguageGuess,
    detect_language,
    languages_summary,
    supported_languages,
)

ENGLISH_SUPPORT_LINES = [
    "my card got declined",
    "can't log in",
    "wrong pin",
    "I was charged twice for the same purchase",
    "my transfer hasn't arrived yet",
    "the ATM didn't give me my cash but my account was debited",
    "do ya ship to Canada",
    "Help my verify my id.",
    "how do i change name?",
    "I try to locate oder 113542617735902",
    "ok thanks for your help",
    "never mind",
]


@pytest.mark.parametrize("text", ENGLISH_SUPPORT_LINES)
def test_english_support_lines_are_never_called_foreign(text):
    """English lines (typos, ones the full model calls Pidgin or Welsh) are English or None."""
    guess = detect_language(text)
    assert guess is None or guess.code == "en"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Hola, mi tarjeta no funciona, ¿me pueden ayudar por favor?", "es"),
        ("Ich habe mein Passwort vergessen und kann mich nicht anmelden", "de"),
        ("Bonjour, ma carte a été refusée au supermarché hier soir", "fr"),
        ("我的银行卡被拒绝了", "zh"),
    ],
)
def test_clear_foreign_sentences_are_detected(text, code):
    """A plain support request in another language is called confidently, with its ISO code."""
    guess = detect_language(text)
    assert guess is not None and guess.code == code
    assert 0.75 <= guess.confidence <= 1.0


@pytest.mark.parametrize("text", ["hola", "ok", "hi", "pin?", "", "   ", "👍👍", "12345678901234"])
def test_short_or_letterless_text_is_not_called(text):
    """Greetings, one word, emoji and digits are left to the model."""
    assert detect_language(text) is None


def test_english_sentence_is_called_english():
    """A full English sentence gets a confident English guess, not just 'not foreign'."""
    guess = detect_language("I forgot my password and the reset email never came")
    assert guess == LanguageGuess(code="en", confidence=guess.confidence)
    assert guess.confidence >= 0.75


def test_detect_language_rejects_non_text():
    """Bytes or None are a caller bug; the error names the type received."""
    with pytest.raises(TypeError, match="got bytes"):
        detect_language(b"hola")


def test_detection_is_thread_safe_from_first_use(monkeypatch):
    """Threads racing on the first use of an unloaded detector all get the same answer."""
    monkeypatch.setattr(language, "_identifier", None)
    results = []
    text = "Ich möchte mein Konto kündigen, bitte helfen Sie mir"

    def detect() -> None:
        results.append(detect_language(text))

    threads = [threading.Thread(target=detect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.code for r in results] == ["de"] * 8


def test_languages_summary_counts_confident_guesses_and_unknown():
    """Each text counts once: under its language when confident, else under 'und'."""
    texts = [
        "my card was declined at the supermarket",
        "why was I charged twice for the same purchase",
        "mi tarjeta está bloqueada y no puedo pagar nada",
        "hi",
    ]
    assert languages_summary(texts) == {"en": 2, "es": 1, UNKNOWN: 1}


def test_languages_summary_names_the_bad_item():
    """A non-string ticket text is reported with its position."""
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        languages_summary(["hello there my friend", 3])


def test_supported_languages_by_share_or_count():
    """A language qualifies on share of called tickets or on count; 'und' is not in the total."""
    counts = {"en": 900, "de": 60, "fr": 40, "it": 10, UNKNOWN: 5000}
    assert supported_languages(counts, min_share=0.03, min_count=50) == ["de", "en", "fr"]
    assert supported_languages(counts, min_share=0.5, min_count=50) == ["de", "en"]
    assert supported_languages(counts, min_share=0.5, min_count=1000) == ["en"]


def test_english_is_supported_as_the_base_language_unless_told_otherwise():
    """A German-only helpdesk still routes English (the base model's language) by default."""
    counts = {"de": 3000, UNKNOWN: 40}
    assert supported_languages(counts) == ["de", "en"]
    assert supported_languages(counts, base_languages=()) == ["de"]
    assert supported_languages({}, min_share=0.05, min_count=50) == ["en"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_share": 0.0}, "min_share"),
        ({"min_share": 1.5}, "min_share"),
        ({"min_count": 0}, "min_count"),
        ({"min_count": 2.5}, "min_count"),
    ],
)
def test_supported_languages_rejects_bad_thresholds(kwargs, message):
    """Thresholds outside their range are refused with the value received."""
    with pytest.raises(ValueError, match=message):
        supported_languages({"en": 10}, **kwargs)


def test_supported_languages_rejects_negative_counts():
    """Counts are tickets: a negative one is named in the error."""
    with pytest.raises(ValueError, match="'fr': -1"):
        supported_languages({"en": 10, "fr": -1})
