"""chatbot.core.text's cleaning: the printable-text shortcut gives what the full pass gives."""

from __future__ import annotations

import unicodedata

import pytest

from chatbot.core.text import clean_text


def _full_pass(text: str) -> str:
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()


@pytest.mark.parametrize(
    "text",
    [
        "  my card was declined  ",
        "line one\nline two\tend",
        "zero\u200bwidth and soft\u00adhyphen",
        "bell\x07 and escape\x1b[31m",
        "no-break\u00a0space\u2028line separator",
        "émoji 🙂 and 日本語",
        "\r\nwindows line\r\n",
        "",
        "   ",
    ],
)
def test_clean_text_matches_the_full_pass(text):
    """Control and format characters go, tabs and newlines stay, whatever path the text takes."""
    assert clean_text(text) == _full_pass(text)
