"""The pure parts of bench/open_world.py: its sets, conversation shapes, answer reading and metrics."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import open_world_sets as sets  # noqa: E402


def test_the_shipped_sets_load_with_their_documented_sizes():
    assert len(sets.lines_load(sets.SETS / "openers_closers.txt")) == 200
    assert len(sets.lines_load(sets.SETS / "off_topic.txt")) == 200
    foreign = sets.foreign_load(sets.SETS / "foreign_requests.jsonl")
    assert len(foreign) == 240
    assert {row.language for row in foreign} == {"fr", "de", "es", "it", "pt", "nl", "pl", "tr"}


def test_a_blank_line_or_a_broken_jsonl_row_is_refused_with_its_line(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("hello\n\nbye\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank line\(s\) \[2\]"):
        sets.lines_load(lines)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "hola", "language": "es", "team": "cards"}) + '\n{"text": "x"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2"):
        sets.foreign_load(rows)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("my card has not arrived yet", ["my card has not", "arrived yet"]),  # spaces at 11 and 15, middle 13.5
        ("how do I top up by card?", ["how do I top", "up by card?"]),  # a space right at the middle (12)
        ("two words", ["two", "words"]),
        ("  refund  ", ["refund"]),
        ("a verylongwordhere", ["a", "verylongwordhere"]),
    ],
)
def test_split_question_cuts_at_the_space_nearest_the_middle(text, parts):
    assert sets.split_question(text) == parts


def test_conversation_shapes():
    shapes = sets.conversation_shapes("where is my new card", "Hi", "thanks")
    context = shapes.pop("context")
    assert shapes == {
        "alone": ["where is my new card"],
        "opener": ["Hi", "where is my new card"],
        "opener_closer": ["Hi", "where is my new card", "thanks"],
        "split": ["where is my", "new card"],
    }
    assert context[1] == "where is my new card" and context[0].startswith("Hi ")
    assert context[0].removeprefix("Hi ") in sets.EMAIL_CONTEXT
    assert sets.conversation_shapes("where is my new card", "Hi", "thanks")["context"] == context  # every run


def test_questions_sample_is_fixed_by_its_seed():
    rows = [(f"q{i}", "cards") for i in range(50)]
    assert sets.questions_sample(rows, 5, 1) == sets.questions_sample(rows, 5, 1)
    assert sets.questions_sample(rows, 5, 1) != sets.questions_sample(rows, 5, 2)
    assert sets.questions_sample(rows, 80, 1) == rows


def test_answers_of_both_releases_are_read_alike():
    assert not sets.held_back({"team": "cards", "triage": False, "reason": "routed"})
    assert sets.held_back({"team": "cards", "triage": True, "reason": "low_confidence"})
    assert sets.held_back({"team": None, "triage": False, "reason": "no_intent"})
    # Before reasons existed: routed unless in triage.
    assert not sets.held_back({"team": "cards", "triage": False})
    assert sets.held_back({"team": "cards", "triage": True})
    assert sets.in_scope_score({"team": "cards", "confidence": 0.7}) == 0.7
    assert sets.in_scope_score({"team": None, "confidence": 0.99, "reason": "out_of_scope"}) == 0.0


def test_auroc_on_fixed_scores():
    assert sets.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert sets.auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert sets.auroc([0.5, 0.5], [0.5]) == 0.5  # ties count half
    # 3 of 4 pairs ordered right: (0.9 > 0.3), (0.9 > 0.6), (0.4 > 0.3); (0.4 < 0.6) wrong.
    assert sets.auroc([0.9, 0.4], [0.3, 0.6]) == 0.75
    with pytest.raises(ValueError):
        sets.auroc([], [0.1])


def test_fpr_at_95_recall_uses_the_threshold_keeping_95_percent_of_in_scope():
    positive = [i / 100 for i in range(1, 101)]  # 0.01 .. 1.00
    assert sets.threshold_at_recall(positive, 0.95) == 0.06  # keeps 0.06 .. 1.00: 95 texts
    assert sets.fpr_at_recall(positive, [0.05, 0.06, 0.5, 0.01], 0.95) == 0.5
    assert sets.fpr_at_recall([0.9] * 10, [0.1] * 4, 0.95) == 0.0


def test_recall_at_one_point_of_accuracy_loss():
    # 100 in-scope texts: scores 0.01..1.00, all correct but the one at 0.50.
    positive = [i / 100 for i in range(1, 101)]
    correct = [i != 50 for i in range(1, 101)]
    negative = [0.005, 0.015, 0.3, 0.9]
    # Losing one correct answer (the one at 0.01) is allowed, a second is not: threshold 0.02.
    recall, threshold = sets.recall_at_accuracy_loss(positive, correct, negative, 0.01)
    assert threshold == 0.02
    assert recall == 0.5
    recall, threshold = sets.recall_at_accuracy_loss(positive, correct, negative, 0.0)
    assert (recall, threshold) == (0.25, 0.01)


def test_percentile_ms_interpolates():
    assert sets.percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)
    assert sets.percentile_ms([0.001, 0.002], 99) == pytest.approx(1.99)
    assert sets.percentile_ms([], 50) is None


def test_table_has_a_column_per_release_and_dashes_for_what_was_not_measured():
    results = {
        "baseline b2d4983": {"chat_alone": 0.97, "chat_alone_unrouted": 1, "chat_split_unrouted": 2},
        "current": {"chat_alone": 0.96, "clinc150": {"auroc": 0.912}, "rest_p50_ms": 1.234},
    }
    lines = sets.table_lines(results)
    assert "baseline b2d4983" in lines[0] and "current" in lines[0]
    row = {line[:42].strip(): line[42:].split() for line in lines[1:]}
    assert row["chat: question alone"] == ["97.0", "%", "96.0", "%"]
    assert row["chat: conversations never routed"] == ["3", "-"]
    assert row["CLINC150 AUROC (score: confidence)"] == ["-", "0.912"]
    assert row["route REST p50 ms (whole request)"] == ["-", "1.23"]


def test_held_back_chats_pair_the_sets_with_a_seed():
    chats = sets.held_back_chats(["hi", "thanks"], ["book a taxi"], 5, seed=3)
    assert set(chats) == {"greetings", "opener_off_topic"}
    assert all(len(turns) == 2 and set(turns) <= {"hi", "thanks"} for turns in chats["greetings"])
    assert all(turns[0] in {"hi", "thanks"} and turns[1] == "book a taxi" for turns in chats["opener_off_topic"])
    assert chats == sets.held_back_chats(["hi", "thanks"], ["book a taxi"], 5, seed=3)
    assert len(chats["greetings"]) == len(chats["opener_off_topic"]) == 5


def test_email_tickets_wrap_each_question_in_every_shape_reproducibly():
    """Each shape holds every question once, inside a signed e-mail; the same seed writes the same e-mails."""
    questions = [("My transfer is still pending.", "Transfers & Payments"), ("Card declined?", "Cards")]
    tickets = sets.email_tickets(questions, seed=3)
    assert set(tickets) == set(sets.EMAIL_SHAPES) and tickets == sets.email_tickets(questions, seed=3)
    for shape, rows in tickets.items():
        assert [team for _, team in rows] == ["Transfers & Payments", "Cards"]
        for (text, _), (question, _) in zip(rows, questions):
            assert question in text and sets.EMAIL_DISCLAIMER in text and len(text) > 600
            assert ("\n-- \n" in text) == sets.EMAIL_SHAPES[shape][1]
            assert ("wrote:\n>" in text) == sets.EMAIL_SHAPES[shape][2]


def _folded(text: str) -> str:
    """As bench/sets/README.md compares lines: lower case, Unicode punctuation removed, spaces collapsed."""
    import unicodedata

    kept = "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    return " ".join(kept.split()) or text.lower()


def test_the_sets_and_e_mail_parts_share_no_line_with_the_training_corpora():
    """The bench never measures a line the model trained on (the README's rule, checked). The
    e-mails' greetings and closings ("Hello,", "Many thanks.") are stock phrases the no-intent
    corpus has too: those rows measure the message body, not the no-intent label."""
    from finetune.ml.no_intent import OFF_TOPIC_CORPUS, load_corpus, no_intent_lines

    trained = {_folded(line) for line in no_intent_lines() + load_corpus(OFF_TOPIC_CORPUS)}
    evaluated = [
        *sets.lines_load(sets.SETS / "openers_closers.txt"),
        *sets.lines_load(sets.SETS / "off_topic.txt"),
        *(row.text for row in sets.foreign_load(sets.SETS / "foreign_requests.jsonl")),
        *sets.EMAIL_CONTEXT,
    ]
    assert [line for line in evaluated if _folded(line) in trained] == []
