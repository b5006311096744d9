"""The shipped no-intent corpus: load, drop what labelled tickets claim, hold part out, augment.

Labelled data wins: a corpus line equal (after normalising) or close (cosine of the frozen base
encoder's mean-pooled vectors at or above a threshold) to any labelled ticket is dropped, so a
helpdesk that routes "thank you" tickets to a team keeps routing them there.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CORPUS_DIR = Path(__file__).resolve().parent / "corpora"
NO_INTENT_CORPUS = CORPUS_DIR / "no_intent.txt"
# Sentences written around a request that name none themselves ("I have been with you for years.",
# "I'm writing from the airport."): no intent alone; as small talk, context a request keeps its team under.
CONTEXT_CORPUS = CORPUS_DIR / "context.txt"
OFF_TOPIC_CORPUS = CORPUS_DIR / "off_topic.txt"  # never trained on: the report's off-topic held-back share
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def load_corpus(path: Path = NO_INTENT_CORPUS) -> list[str]:
    """One text per line; blank lines and lines starting with '#' are skipped; duplicates once."""
    seen, lines = set(), []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def no_intent_lines() -> list[str]:
    """The lines the reserved label trains on: the no-intent corpus, then the context corpus."""
    return list(dict.fromkeys(load_corpus(NO_INTENT_CORPUS) + load_corpus(CONTEXT_CORPUS)))


def normalise(text: str) -> str:
    """Lower case, punctuation and spacing folded: "Thanks!!" and "thanks" are the same line."""
    folded = _NOT_WORD.sub(" ", text.casefold()).strip()
    return folded or text.strip()


@dataclass
class Corpus:
    train: list[str]
    heldout: list[str]  # never trained on: the report's held-back share
    dropped: list[str]  # lines a labelled ticket claimed (equal or similar)
    helpdesk: list[str] = field(default_factory=list)  # the helpdesk's own "not a request" lines, in train


def claimed_by_labelled(lines: list[str], labelled: list[str], vectors, threshold: float) -> list[bool]:
    """Whether each corpus line duplicates or closely matches a labelled text.

    vectors(texts) -> [n, d] unit-length float array (the frozen base encoder's mean-pooled vectors);
    None skips the similarity test (equality only).
    """
    exact = {normalise(text) for text in labelled}
    claimed = [normalise(line) in exact for line in lines]
    if vectors is None or not labelled or not lines or threshold > 1:
        return claimed
    corpus_vectors, labelled_vectors = vectors(lines), vectors(labelled)
    best = np.zeros(len(lines))
    for start in range(0, len(labelled_vectors), 4096):
        best = np.maximum(best, (corpus_vectors @ labelled_vectors[start : start + 4096].T).max(axis=1))
    return [c or bool(b >= threshold) for c, b in zip(claimed, best)]


def corpus_split(lines: list[str], claimed: list[bool], *, holdout: float, seed: int) -> Corpus:
    """Drop claimed lines; hold out a seeded share of the rest for evaluation."""
    kept = [line for line, c in zip(lines, claimed) if not c]
    random.Random(seed).shuffle(kept)
    cut = round(len(kept) * holdout)
    return Corpus(train=kept[cut:], heldout=kept[:cut], dropped=[line for line, c in zip(lines, claimed) if c])


def with_small_talk(texts: list[str], labels: list[int], corpus: list[str], *, share: float, seed: int):
    """Copies of a seeded `share` of the labelled texts with a corpus line before, after, or both.

    Same label: "hi! my card was declined. thanks" is the card question. Returns (texts, labels).
    """
    if not corpus or share <= 0:
        return [], []
    rng = random.Random(seed)
    chosen = rng.sample(range(len(texts)), min(len(texts), round(len(texts) * share)))
    out_texts, out_labels = [], []
    for index in chosen:
        where = rng.choice(("before", "after", "both"))
        text = texts[index]
        if where in ("before", "both"):
            text = f"{rng.choice(corpus)} {text}"
        if where in ("after", "both"):
            text = f"{text} {rng.choice(corpus)}"
        out_texts.append(text)
        out_labels.append(labels[index])
    return out_texts, out_labels
