"""The pure parts of bench/open_world.py: its evaluation sets, conversation shapes and metrics.

No server, no Django: tests/bench/test_open_world_sets.py runs all of it on small fixed inputs.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

SETS = Path(__file__).resolve().parent / "sets"
# The reasons a route answer gives for holding a text back rather than routing it.
ROUTED = "routed"


@dataclass(frozen=True)
class ForeignRequest:
    text: str
    language: str
    team: str  # a slug of the Banking77 teams


def lines_load(path: Path) -> list[str]:
    """One text a line; blank lines are refused (the sets have none: a blank one is a broken file)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blank = [number for number, line in enumerate(lines, 1) if not line.strip()]
    if blank:
        raise ValueError(f"{path}: blank line(s) {blank[:5]}; the sets hold one text a line")
    return lines


def foreign_load(path: Path) -> list[ForeignRequest]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            obj = json.loads(line)
            rows.append(ForeignRequest(text=obj["text"], language=obj["language"], team=obj["team"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f'{path}:{number}: expected {{"text", "language", "team"}}: {exc!r}') from exc
    return rows


def split_question(text: str) -> list[str]:
    """The question as two messages, cut at the space nearest the middle; one word stays one message."""
    words = text.split()
    if len(words) < 2:
        return [text.strip()]
    middle = len(" ".join(words)) / 2
    cuts, offset = [], -1
    for index, word in enumerate(words[:-1], 1):
        offset += len(word) + 1  # the position of the space after this word
        cuts.append((abs(offset - middle), index))
    best = min(cuts)[1]
    return [" ".join(words[:best]), " ".join(words[best:])]


def conversation_shapes(question: str, opener: str, closer: str) -> dict[str, list[str]]:
    """The customer turns of each conversation shape the bench sends for one question; the context
    line before it (one of EMAIL_CONTEXT) is the same for the same question on every run."""
    context = EMAIL_CONTEXT[zlib.crc32(question.encode()) % len(EMAIL_CONTEXT)]
    return {
        "alone": [question],
        "opener": [opener, question],
        "opener_closer": [opener, question, closer],
        "split": split_question(question),
        "context": [f"{opener} {context}", question],
    }


def held_back_chats(openers_closers: list[str], off_topic: list[str], n: int, seed: int) -> dict[str, list[list[str]]]:
    """Two-turn conversations no team should take, drawn with a seed: two openers/closers ("hi",
    "thanks"), and an opener before an off-topic line; read together they must still not route."""
    rng = random.Random(seed)
    return {
        "greetings": [[rng.choice(openers_closers), rng.choice(openers_closers)] for _ in range(n)],
        "opener_off_topic": [[rng.choice(openers_closers), rng.choice(off_topic)] for _ in range(n)],
    }


# Parts of the e-mail tickets the bench writes around a question (e-mail shapes, below).
EMAIL_GREETINGS = ("Hi team,", "Hello,", "Dear Support,", "Good morning,", "Hi there,", "Dear Sir or Madam,")
EMAIL_CONTEXT = (
    "I hope you are well.",
    "I have been a customer for several years and usually everything works fine.",
    "Sorry to bother you again, I know you must be busy.",
    "I tried to find the answer on your website but could not.",
    "A colleague suggested that I write to this address.",
    "I am writing from my work computer, so replies may be slow.",
    "This is my second e-mail about this, the first one may have got lost.",
    "I was travelling last week and only now had time to look into it.",
)
EMAIL_CLOSINGS = ("Thanks in advance for your help.", "Looking forward to hearing from you.", "Many thanks.")
EMAIL_SIGN_OFFS = ("Kind regards,", "Best wishes,", "Regards,", "Cheers,", "Thanks,")
EMAIL_NAMES = ("Anna Kowalski", "James O'Connor", "Priya Raman", "Tom Becker", "Maria Rossi", "Li Wei")
EMAIL_DISCLAIMER = (
    "This e-mail and any files transmitted with it are confidential and intended solely for the use of the "
    "individual or entity to whom they are addressed. If you have received this e-mail in error please notify "
    "the sender and delete it from your system. Any views or opinions presented in this e-mail are solely those "
    "of the author and do not necessarily represent those of the company. The recipient should check this e-mail "
    "and any attachments for the presence of viruses; no liability is accepted for any damage caused by a virus."
)
EMAIL_QUOTED = (
    "On Tue, 4 Nov 2025 at 09:12, Support <support@example.com> wrote:\n"
    "> Thank you for contacting us. We have received your message and one of our agents will get back to you.\n"
    "> Your reference number is 48213.\n> Kind regards, the support team"
)
# shape -> (context sentences before the question, signature delimiter "-- ", quoted earlier message)
EMAIL_SHAPES = {
    "signed": (0, True, False),
    "signed_no_delimiter": (0, False, False),
    "signed_quoted": (0, True, True),
    "context_signed": (2, False, False),
    "context4_signed": (4, False, False),
}


def email_ticket(question: str, shape: str, rng: random.Random) -> str:
    """The question as an e-mail: greeting, optional context, closing, sign-off and name, then a
    signature block with a phone number and a disclaimer, and optionally a quoted earlier message."""
    context, delimiter, quoted = EMAIL_SHAPES[shape]
    name = rng.choice(EMAIL_NAMES)
    lines = [rng.choice(EMAIL_GREETINGS), ""]
    if context:
        lines += [" ".join(rng.sample(EMAIL_CONTEXT, context)), ""]
    lines += [question, "", rng.choice(EMAIL_CLOSINGS), "", rng.choice(EMAIL_SIGN_OFFS), name]
    lines += ["-- " if delimiter else "", name, f"Mobile: +44 7700 900{rng.randint(100, 999)}", "", EMAIL_DISCLAIMER]
    if quoted:
        lines += ["", EMAIL_QUOTED]
    return "\n".join(lines)


def email_tickets(questions: list[tuple[str, str]], seed: int) -> dict[str, list[tuple[str, str]]]:
    """Per e-mail shape, every (question, team) as (e-mail ticket, team), drawn with a seed."""
    rng = random.Random(seed)
    return {shape: [(email_ticket(q, shape, rng), team) for q, team in questions] for shape in EMAIL_SHAPES}


def questions_sample(rows: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """A fixed seeded sample of (text, team) test rows, in the order drawn."""
    if n >= len(rows):
        return list(rows)
    return random.Random(seed).sample(rows, n)


def answer_reason(answer: dict) -> str:
    """An answer's reason; releases before reasons existed: routed unless triage is set."""
    if answer.get("reason"):
        return answer["reason"]
    return "low_confidence" if answer.get("triage") else ROUTED


def held_back(answer: dict) -> bool:
    return answer_reason(answer) != ROUTED


def share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def in_scope_score(answer: dict) -> float:
    """How in-scope a route answer says a text is: the confidence of its best team, or 0 when the
    model itself set the text aside (no intent, out of scope, unsupported language: no team)."""
    if answer.get("team") is None:
        return 0.0
    return float(answer.get("confidence") or 0.0)


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney U)."""
    if not positive or not negative:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranked = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum, index = 0.0, 0
    while index < len(ranked):
        end = index
        while end < len(ranked) and ranked[end][0] == ranked[index][0]:
            end += 1
        average_rank = (index + 1 + end) / 2  # ranks index+1 .. end share their mean
        rank_sum += average_rank * sum(label for _, label in ranked[index:end])
        index = end
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def threshold_at_recall(positive: list[float], recall: float) -> float:
    """The highest threshold t with at least ``recall`` of the positives scoring >= t."""
    ordered = sorted(positive, reverse=True)
    keep = max(1, math.ceil(recall * len(ordered) - 1e-9))
    return ordered[min(keep, len(ordered)) - 1]


def fpr_at_recall(positive: list[float], negative: list[float], recall: float = 0.95) -> float:
    """Share of negatives (out of scope) passing the threshold that keeps ``recall`` of the positives."""
    threshold = threshold_at_recall(positive, recall)
    return sum(s >= threshold for s in negative) / len(negative)


def recall_at_accuracy_loss(
    positive: list[float], correct: list[bool], negative: list[float], max_loss: float = 0.01
) -> tuple[float, float]:
    """(out-of-scope recall, threshold) at the highest threshold costing at most ``max_loss`` of
    in-scope accuracy; a held-back in-scope text counts as wrong, one scoring >= t is kept."""
    pairs = sorted(zip(positive, correct))
    allowed = max_loss * len(pairs) + 1e-9  # correct in-scope answers we may lose
    best, lost, index = float("-inf"), 0, 0
    while index < len(pairs):
        threshold = pairs[index][0]  # keeping scores >= threshold loses every correct one below it
        if lost > allowed:
            break
        best = threshold
        while index < len(pairs) and pairs[index][0] == threshold:
            lost += pairs[index][1]
            index += 1
    recall = sum(s < best for s in negative) / len(negative)
    return recall, best


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation) of durations in seconds, in ms."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return 1000 * (ordered[low] + (ordered[high] - ordered[low]) * (position - low))


ROWS = (
    ("chat: question alone", "chat_alone", "pct"),
    ("chat: opener + question", "chat_opener", "pct"),
    ("chat: opener + question + closer", "chat_opener_closer", "pct"),
    ("chat: question split in two", "chat_split", "pct"),
    ("chat: opener + context line, question", "chat_context", "pct"),
    ("chat: conversations never routed", "unrouted", "count"),
    ("chat held back: two openers/closers", "chat_held_greetings", "pct"),
    ("chat held back: opener + off-topic", "chat_held_opener_off_topic", "pct"),
    ("chat: error frames / failed sockets", "chat_errors", "count"),
    ("e-mail: question alone, routed right", "email_alone", "pct"),
    ("e-mail: signed, disclaimer", "email_signed", "pct"),
    ("e-mail: signed, no '-- ' delimiter", "email_signed_no_delimiter", "pct"),
    ("e-mail: signed, earlier message quoted", "email_signed_quoted", "pct"),
    ("e-mail: context first, signed", "email_context_signed", "pct"),
    ("e-mail: 4 context sentences first", "email_context4_signed", "pct"),
    ("e-mail held back: off-topic request", "email_off_topic", "pct"),
    ("held back: openers/closers", "openers_closers", "pct"),
    ("held back: off-topic", "off_topic", "pct"),
    ("held back: foreign requests", "foreign_held_back", "pct"),
    ("foreign: held back or routed right", "foreign_held_back_or_right", "pct"),
    ("CLINC150 in-scope routed right", "clinc150.in_scope_accuracy_routed", "pct"),
    ("CLINC150 out-of-scope held back", "clinc150.oos_held_back", "pct"),
    ("CLINC150 AUROC (score: confidence)", "clinc150.auroc", "float"),
    ("CLINC150 FPR at 95 % in-scope recall", "clinc150.fpr_at_95_recall", "pct"),
    ("CLINC150 OOS recall at <=1 pt acc. loss", "clinc150.oos_recall_at_1pt_loss", "pct"),
    ("route REST p50 ms (whole request)", "rest_p50_ms", "ms"),
    ("route REST p99 ms", "rest_p99_ms", "ms"),
    ("Router.predict p50 ms (1 thread)", "predict_p50_ms", "ms"),
    ("Router.predict p99 ms", "predict_p99_ms", "ms"),
)


def _lookup(result: dict, key: str):
    if key == "unrouted":
        counts = [value for name, value in result.items() if name.endswith("_unrouted")]
        return sum(counts) if counts else None
    for part in key.split("."):
        if not isinstance(result, dict) or part not in result:
            return None
        result = result[part]
    return result


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    return {"pct": f"{100 * value:.1f} %", "ms": f"{value:.2f}", "float": f"{value:.3f}", "count": str(value)}[kind]


def table_lines(results: dict[str, dict]) -> list[str]:
    """The results as one table: a row per measure, a column per release ('-': not measured)."""
    names = list(results)
    width = max(14, *(len(name) + 2 for name in names))
    lines = [f"{'':<42}" + "".join(f"{name:>{width}}" for name in names)]
    for label, key, kind in ROWS:
        lines.append(f"{label:<42}" + "".join(f"{_cell(_lookup(results[n], key), kind):>{width}}" for n in names))
    return lines
