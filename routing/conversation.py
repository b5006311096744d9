"""Routing a conversation rather than a message: one rule for the chat and for REST ``messages``.

A conversation is routed on the customer's turns that carry an intent, oldest first, joined into
one text (the model's token window then keeps what fits). A turn the model scores as no intent on
its own ("hi", "ok thanks", an emoji) is left out, so a greeting before the question or thanks
after it cannot pull the conversation to another team. While no turn carries an intent the
answer is ``no_intent``: the conversation waits.
"""

from __future__ import annotations

from routing.loaded_model import Prediction

NO_INTENT = "no_intent"
# The newest turns read at most: older ones rarely change where a conversation belongs.
MAX_TURNS = 8


def turns_join(turns: list[str]) -> str:
    """The text the model reads for these intent-carrying turns (oldest first)."""
    return "\n".join(turn.strip() for turn in turns[-MAX_TURNS:])


def carries_intent(prediction: Prediction) -> bool:
    return prediction.reason != NO_INTENT


def turns_answer(earlier: list[str], scored: list[tuple[str, Prediction]]) -> tuple[Prediction | None, str | None]:
    """The rule, given the intent turns already known and new turns each scored alone (oldest first):
    (the answer, None) when one intent turn or none decides it, else (None, the joined text to score)."""
    carrying = earlier + [turn for turn, prediction in scored if carries_intent(prediction)]
    if len(carrying) > 1:
        return None, turns_join(carrying)
    intent = [prediction for _, prediction in scored if carries_intent(prediction)]
    return (intent[-1] if intent else scored[-1][1]), None


def conversation_predict(router, turns: list[str]) -> Prediction:
    """The conversation's routing from its customer turns (oldest first), as the chat routes it.

    Each turn is scored alone (one batch); a conversation with one intent-carrying turn is
    answered by that turn's own prediction, several by the prediction of their joined text.
    """
    turns = turns[-MAX_TURNS:]
    answer, joined = turns_answer([], list(zip(turns, router.predict(turns))))
    return answer if joined is None else router.predict([joined])[0]
