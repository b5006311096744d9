"""The honest baseline: TF-IDF (word 1–2 grams + char_wb 3–5 grams) and logistic regression."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union

from .evaluate import classification_metrics
from .window import TEXT_WINDOW_CHARS, window_text


@dataclass(frozen=True)
class WindowedLowercase:
    """The vectorizers' preprocessor: a long text's character window (window.window_text), lowercased
    as TfidfVectorizer's own preprocessor would. ``tfidf.TfidfModel.from_sklearn`` reads max_chars."""

    max_chars: int = TEXT_WINDOW_CHARS

    def __call__(self, text: str) -> str:
        return window_text(text, self.max_chars).lower()


def fit_baseline(texts: list[str], y: list[int], *, seed: int = 0):
    """Fit the TF-IDF + logistic regression pipeline on the train split (each text's character window)."""
    window = WindowedLowercase()
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, preprocessor=window),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, preprocessor=window),
    )
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    return make_pipeline(features, classifier).fit(texts, y)


def run_baseline(
    train_texts: list[str],
    train_y: list[int],
    test_texts: list[str],
    test_y: list[int],
    labels: list[str],
    *,
    seed: int = 0,
) -> dict:
    """Fit on train, score on test; classes absent from train are simply never predicted."""
    start = time.perf_counter()
    model = fit_baseline(train_texts, train_y, seed=seed)
    return score_baseline(model, test_texts, test_y, labels, seconds=time.perf_counter() - start)


def score_baseline(model, texts: list[str], y: list[int], labels: list[str], *, seconds: float) -> dict:
    """The fitted baseline's test metrics, with the seconds its fit took."""
    start = time.perf_counter()
    predictions = model.predict(texts) if texts else []
    metrics = classification_metrics(predictions, y, labels)
    metrics["seconds"] = round(seconds + time.perf_counter() - start, 2)
    return metrics
