"""window_ids: short texts untouched; long ones keep head and tail, special tokens included.
window_text: the same for characters, whole words at the cuts. message_body: a ticket without its signature,
footer and quoted messages."""

import pytest

from finetune.ml.window import message_body, sentences, window_ids, window_text


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


def test_short_text_is_unchanged():
    assert window_text("my card was declined", 2000) == "my card was declined"


def test_long_text_keeps_whole_words_of_its_head_and_tail():
    words = [f"w{i:04d}" for i in range(2000)]  # 5 characters and a space each
    text = " ".join(words)
    windowed = window_text(text, 1000, 0.75)
    assert len(windowed) <= 1000
    head, tail = windowed.split("\n")
    assert head.split() == words[: len(head.split())] and len(head) > 700
    assert tail.split() == words[-len(tail.split()) :] and len(tail) > 200
    assert all(len(word) == 5 for word in head.split() + tail.split())  # no word cut in two


def test_a_text_without_spaces_is_cut_where_it_must_be():
    windowed = window_text("x" * 10_000, 100)
    assert len(windowed) == 100 and windowed.count("\n") == 1


def test_bad_text_window_arguments_are_refused():
    with pytest.raises(ValueError, match="max_chars"):
        window_text("abc", 1)
    with pytest.raises(ValueError, match="head_share"):
        window_text("abc", 2, 1.5)


EMAIL = (
    "Hi team,\n\nMy card payment was declined twice today.\n\nKind regards,\nAnna Kowalski\n"
    "Customer since 2019 | Mobile: +44 7700 900123\n\n" + "This e-mail is confidential and for its addressee only. " * 6
)


def test_message_body_cuts_a_long_mail_before_its_sign_off():
    assert message_body(EMAIL) == "Hi team,\n\nMy card payment was declined twice today."


@pytest.mark.parametrize(
    "tail",
    [
        "\n-- \nAnna Kowalski\nAccount manager",
        "\n__________\nDisclaimer: confidential",
        "\nSent from my iPhone",
        "\n\nOn Tue, 4 Nov 2025 at 09:12, Support <help@example.com> wrote:\n> Thanks for writing\n> Regards",
        "\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nmy card works",
        "\nFrom: Support <help@example.com>\nSent: Monday, 3 November 2025 10:00\nTo: Anna\nSubject: Re: card",
        "\n\nLe mar. 4 nov. 2025 à 09:12, Support <help@example.com> a écrit :\n> Bonjour",
    ],
)
def test_message_body_drops_signatures_footers_and_quoted_messages(tail):
    """What follows a signature delimiter, a mail app's footer or a quoted-message header is not the request."""
    assert message_body("My card payment was declined." + tail) == "My card payment was declined."


def test_message_body_leaves_chat_lines_and_short_texts_alone():
    """One line, a short text with "thanks" on a line of its own, a "From:" that is no header: unchanged."""
    for text in (
        "Thanks",
        "hi\nthanks",
        "thanks\nand how do I top up?",
        "From: my savings\nto my current account, is it instant?",
        "Kind regards",
    ):
        assert message_body(text) == text


def test_message_body_drops_quoted_lines_is_idempotent_and_never_empty():
    assert message_body("my card is lost\n> earlier message\nplease block it") == "my card is lost\nplease block it"
    assert message_body(message_body(EMAIL)) == message_body(EMAIL)
    assert message_body("> only quoted\n> lines") == "> only quoted\n> lines"
    assert message_body("--\nsignature only") == "--\nsignature only"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi. My card is lost! Can you block it?", ["Hi.", "My card is lost!", "Can you block it?"]),
        ("Hello team,\n\nmy card is lost\n  please block it ", ["Hello team,", "my card is lost", "please block it"]),
        ("Wait...what?  ok", ["Wait...what?", "ok"]),
        ("version 2.5 of the app", ["version 2.5 of the app"]),  # no white space after the point
        ("卡丢了。请冻结！谢谢", ["卡丢了。", "请冻结！", "谢谢"]),
        ("one line", ["one line"]),
        ("  \n ", []),
    ],
)
def test_sentences_split_at_line_breaks_and_sentence_ends(text, expected):
    assert sentences(text) == expected
