"""Bad input over REST (issue 14): tiny, empty, emoji, mixed-language and long conversations answer
clearly ({"code", "detail"} on refusal, a reason on success) and store nothing."""

from __future__ import annotations

import pytest

from finetune.models import Ticket
from routing.serializers import MAX_CONVERSATION_TURNS, REASONS

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"text": ""}, ""),
        ({"text": " \n\t "}, ""),
        ({"messages": ["my invoice", ""]}, "messages[1]: "),
        ({"messages": ["   "]}, "messages[0]: "),
        ({"texts": ["\u200b"]}, "texts[0]: "),
    ],
)
def test_empty_or_whitespace_only_text_is_400_empty_text(api, router, teams, install_version, payload, where):
    """Empty, whitespace-only or invisible text, alone or as a conversation turn: 400 empty_text naming it."""
    install_version("v1", state="active")
    response = api.post("/api/v1/route", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"code": "empty_text", "detail": f"{where}text is empty: send the customer's message."}


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "👍"},
        {"text": "🙂🙂🙂"},
        {"text": "k"},
        {"text": "?"},
        {"messages": ["👍", "k"]},
        {"text": "Hola, my card was declined, merci beaucoup"},
        {"messages": ["Bonjour", "my invoice payment was charged twice", "danke"]},
    ],
)
def test_tiny_emoji_and_mixed_language_texts_get_an_answer_with_a_reason(api, router, teams, install_version, payload):
    """Emoji-only, one-character and mixed-language texts are routed like any other: 200 with a reason."""
    install_version("v1", state="active")
    response = api.post("/api/v1/route", payload, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["reason"] in REASONS and "language" in body and body["triage"] in (True, False)
    assert Ticket.objects.count() == 0


def test_a_conversation_of_the_most_turns_is_routed_and_one_more_refused(api, router, teams, install_version):
    """200 turns (the limit) answer 200 on the newest turns; 201 answer 400 invalid naming `messages`."""
    install_version("v1", state="active")
    turns = ["hi"] * (MAX_CONVERSATION_TURNS - 1) + ["my invoice payment was charged twice"]
    response = api.post("/api/v1/route", {"messages": turns}, format="json")
    assert response.status_code == 200 and response.json()["reason"] in REASONS
    refused = api.post("/api/v1/route", {"messages": turns + ["thanks"]}, format="json")
    assert refused.status_code == 400 and "messages" in refused.json()["errors"]


@pytest.mark.parametrize(
    "messages",
    [[["nested"]], [None], {"0": "hi"}, [{"text": "hi"}], "hi"],
)
def test_messages_that_are_not_a_list_of_strings_are_400(api, router, teams, install_version, messages):
    """`messages` must be a list of strings: anything else is 400 invalid naming the field."""
    install_version("v1", state="active")
    response = api.post("/api/v1/route", {"messages": messages}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "messages" in body["errors"] and body["detail"]


def test_a_turn_over_the_text_limit_is_413_naming_the_turn(api, router, teams, install_version, settings):
    """One over-long turn in `messages`: 413 text_too_long, saying which turn and the limit."""
    install_version("v1", state="active")
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MAX_TEXT_CHARS": 50}
    response = api.post("/api/v1/route", {"messages": ["hi", "x" * 51]}, format="json")
    assert response.status_code == 413
    assert response.json() == {
        "code": "text_too_long",
        "detail": "messages[1]: text is 51 characters; the limit is 50.",
    }
