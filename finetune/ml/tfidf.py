"""The TF-IDF + logistic regression baseline as served: scikit-learn's transform, in plain numpy.

baseline.py fits the model with scikit-learn; ``TfidfModel.from_sklearn`` takes its vocabularies,
idf and coefficients, and ``log_proba`` reproduces ``predict_log_proba`` exactly (word 1–2 grams
and char_wb 3–5 grams, lowercase, sublinear tf, l2 per analyzer, on the text's character window
``window.window_text``), with no pickle and no scikit-learn in the serving process. ``Hybrid``
adds those log-probabilities to the student's logits; the pipeline, the parity gate and the
router all score through it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .window import window_text

# scikit-learn's defaults for the settings baseline.py leaves alone (token_pattern, white space).
WORD_PATTERN = re.compile(r"(?u)\b\w\w+\b")
WHITE_SPACES = re.compile(r"\s\s+")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """TfidfVectorizer(analyzer="word", ngram_range=(low, high), lowercase=True)'s terms."""
    tokens = WORD_PATTERN.findall(text.lower())
    terms = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        terms += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return terms


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """TfidfVectorizer(analyzer="char_wb", ngram_range=(low, high), lowercase=True)'s terms."""
    terms: list[str] = []
    for word in WHITE_SPACES.sub(" ", text.lower()).split():
        terms += _padded_word_ngrams(f" {word} ", low, high)
    return terms


def _padded_word_ngrams(word: str, low: int, high: int) -> list[str]:
    terms: list[str] = []
    for n in range(low, high + 1):
        if len(word) <= n:  # a short word counts once, whole, at the smallest n
            terms.append(word)
            break
        terms += [word[i : i + n] for i in range(len(word) - n + 1)]
    return terms


WORD_CACHE_SIZE = 50_000  # words whose char n-gram columns are kept: most of a helpdesk's vocabulary


@dataclass(frozen=True)
class Analyzer:
    """One TfidfVectorizer: its kind, n-gram range, vocabulary (term -> column) and idf."""

    kind: str  # "word" or "char_wb"
    ngrams: tuple[int, int]
    vocabulary: dict[str, int] = field(repr=False)
    idf: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        # A word's char n-grams do not depend on its neighbours: their columns are cached per word,
        # which takes most of the char analyzer's cost off a message (the counts stay exact).
        object.__setattr__(self, "_word_columns", lru_cache(WORD_CACHE_SIZE)(self._columns_of_word))

    def _columns_of_word(self, word: str) -> tuple[int, ...]:
        vocabulary = self.vocabulary
        return tuple(vocabulary[t] for t in _padded_word_ngrams(f" {word} ", *self.ngrams) if t in vocabulary)

    def columns(self, text: str) -> list[int]:
        """The vocabulary column of each of the text's terms, repeated as often as the term occurs."""
        if self.kind == "word":
            vocabulary = self.vocabulary
            return [vocabulary[t] for t in word_ngrams(text, *self.ngrams) if t in vocabulary]
        out: list[int] = []
        for word in WHITE_SPACES.sub(" ", text.lower()).split():
            out += self._word_columns(word)
        return out

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of the text's l2-normalised sublinear tf-idf vector."""
        counts = Counter(self.columns(text))
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[columns]
        return columns, values / np.sqrt(values @ values)


@dataclass(frozen=True)
class TfidfModel:
    """The features of every analyzer side by side, then a (multinomial or binary) logistic regression."""

    analyzers: tuple[Analyzer, ...]
    coef: np.ndarray = field(repr=False)  # [features, classes] (rows gather fast); one column for a binary model
    intercept: np.ndarray = field(repr=False)  # [classes] (one value for a binary model)
    classes: np.ndarray = field(repr=False)  # the label index of each class the model was fitted on
    num_labels: int = 0
    max_chars: int | None = None  # the character window it reads (None: the whole text, as older artifacts)

    @classmethod
    def from_sklearn(cls, pipeline, num_labels: int) -> TfidfModel:
        """From baseline.fit_baseline's make_pipeline(make_union(vectorizers...), LogisticRegression)."""
        union, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
        max_chars = getattr(union.transformer_list[0][1].preprocessor, "max_chars", None)
        analyzers = tuple(
            Analyzer(v.analyzer, tuple(v.ngram_range), dict(v.vocabulary_), np.asarray(v.idf_, dtype=np.float64))
            for _, v in union.transformer_list
        )
        return cls(
            analyzers,
            np.ascontiguousarray(classifier.coef_.T, dtype=np.float64),
            np.asarray(classifier.intercept_, dtype=np.float64),
            np.asarray(classifier.classes_, dtype=np.int64),
            num_labels,
            max_chars,
        )

    def __post_init__(self) -> None:
        offsets = np.cumsum([0] + [len(a.idf) for a in self.analyzers])[:-1]
        object.__setattr__(self, "_offsets", tuple(int(o) for o in offsets))

    def decision(self, texts: list[str]) -> np.ndarray:
        """LogisticRegression.decision_function of the texts: [texts, coef columns]."""
        out = np.empty((len(texts), self.coef.shape[1]))
        for index, text in enumerate(texts):
            if self.max_chars is not None:
                text = window_text(text, self.max_chars)
            rows = [analyzer.row(text) for analyzer in self.analyzers]
            columns = np.concatenate([c + offset for (c, _), offset in zip(rows, self._offsets)])
            out[index] = np.concatenate([v for _, v in rows]) @ self.coef[columns] + self.intercept
        return out

    def log_proba(self, texts: list[str]) -> np.ndarray:
        """Log-probabilities over all `num_labels` labels (see ``spread``)."""
        scores = self.decision(texts)
        if len(self.classes) == 2:  # binary: coef has one row, p(second class) = sigmoid(score)
            class_log_proba = np.hstack([-np.logaddexp(0, scores), -np.logaddexp(0, -scores)])
        else:
            class_log_proba = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
        return spread(class_log_proba, self.classes, self.num_labels)


def spread(class_log_proba: np.ndarray, classes: np.ndarray, num_labels: int) -> np.ndarray:
    """Per-class log-probabilities placed in label columns.

    A label the model never saw (the reserved no-intent label, a team with no train tickets) gets
    the row's best value: TF-IDF has no opinion there, so it neither raises nor lowers it against
    the TF-IDF favourite and the student alone decides.
    """
    out = np.repeat(class_log_proba.max(axis=1, keepdims=True), num_labels, axis=1)
    out[:, classes] = class_log_proba
    return out


@dataclass(frozen=True)
class Hybrid:
    """Served logits = student logits + weight × TF-IDF log-probabilities (weight fitted on validation)."""

    weight: float
    model: TfidfModel = field(compare=False, repr=False)

    def logits(self, student_logits: np.ndarray, texts: list[str]) -> np.ndarray:
        return combine(student_logits, self.model.log_proba(texts), self.weight)


def combine(student_logits: np.ndarray, tfidf_log_proba: np.ndarray, weight: float) -> np.ndarray:
    return np.asarray(student_logits, dtype=np.float64) + weight * tfidf_log_proba
