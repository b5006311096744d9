"""Routing a conversation rather than a message: one rule for the chat and for REST ``messages``.

A conversation is routed on the customer's turns that carry an intent, oldest first, joined into
one text (the model's token window then keeps what fits). A turn the model scores as no intent on
its own ("hi", "ok thanks", an emoji) is left out, so a greeting before the question or thanks
after it cannot pull the conversation to another team. While no turn carries an intent the
answer is ``no_intent``: the conversation waits.

A question typed over two messages ("is there tracking" / "info available?") can score as no
intent, or out of scope, half by half. So when the intent turns leave the conversation unrouted
and one of its newest FRAGMENT_TURNS turns was left out of them, those turns are read together
once more, and route it if that text routes (docs/benchmarks.md, "question split in two").
"""

from __future__ import annotations

from routing.loaded_model import Prediction

NO_INTENT = "no_intent"
# The newest turns read at most: older ones rarely change where a conversation belongs.
MAX_TURNS = 8
# The newest turns read together when the intent turns do not route: two measured as well as three
# on split questions, and held back more greetings (docs/experiments.md).
FRAGMENT_TURNS = 2
ROUTED = "routed"


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


def fragments_text(answer: Prediction | None, newest: list[tuple[str, bool]]) -> str | None:
    """The newest FRAGMENT_TURNS turns joined, to score when ``answer`` (the intent turns' answer)
    does not route the conversation and one of those turns was left out of it (no intent alone).

    ``newest``: the conversation's last turns, oldest first, each with whether it carries an
    intent. None when the answer routes, when there is no model, with fewer turns, or when every
    one of them carries an intent (the intent turns' text already read them together).
    """
    newest = newest[-FRAGMENT_TURNS:]
    if answer is None or answer.reason == ROUTED or len(newest) < FRAGMENT_TURNS or all(c for _, c in newest):
        return None
    return turns_join([text for text, _ in newest])


def fragments_answer(answer: Prediction, candidate: Prediction | None) -> Prediction:
    """The newest turns' prediction when it routes, else the intent turns' answer."""
    return candidate if candidate is not None and candidate.reason == ROUTED else answer


def conversation_predict(router, turns: list[str]) -> Prediction:
    """The conversation's routing from its customer turns (oldest first), as the chat routes it.

    Each turn is scored alone (one batch); a conversation with one intent-carrying turn is
    answered by that turn's own prediction, several by the prediction of their joined text; an
    answer that does not route gives way to the newest turns' joined text when that routes.
    """
    turns = turns[-MAX_TURNS:]
    scored = list(zip(turns, router.predict(turns)))
    answer, joined = turns_answer([], scored)
    if joined is not None:
        answer = router.predict([joined])[0]
    fragments = fragments_text(answer, [(turn, carries_intent(p)) for turn, p in scored])
    return answer if fragments is None else fragments_answer(answer, router.predict([fragments])[0])
