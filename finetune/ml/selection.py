"""Which texts to label next: the model's hesitation (margins) and near-duplicates spread apart.

Pure numpy / scikit-learn, so ``bench/active_learning.py`` measures exactly what the admin's
"Label next" page (finetune.labelling) uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

# Cosine above which two texts count as near-duplicates (TF-IDF, word 1-2 grams).
NEAR_DUPLICATE = 0.9


def score_margins(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: small means the model hesitates between two teams."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be [n, >=2], got shape {probabilities.shape}")
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def text_features(texts: Sequence[str]) -> sparse.csr_matrix:
    """L2-normalised TF-IDF rows (word 1-2 grams, sublinear): row dot products are cosines."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
    try:
        return vectorizer.fit_transform(list(texts)).tocsr()
    except ValueError:  # every text empty or stop-words only: nothing is similar to anything
        return sparse.csr_matrix((len(texts), 1))


def _cosines(rows, columns) -> np.ndarray:
    product = rows @ columns.T
    return product.toarray() if sparse.issparse(product) else np.asarray(product)


def select_uncertain(
    *,
    margins: np.ndarray,
    features,
    count: int,
    candidates: int | None = None,
    max_similarity: float = NEAR_DUPLICATE,
    avoid=None,
) -> list[int]:
    """Indices of ``count`` items to label, most uncertain first, near-duplicates spread out.

    Greedy over the ``candidates`` smallest margins (default 4 x count): each pick is the lowest
    margin whose cosine to every earlier pick (and to each row of ``avoid``, e.g. the ticket just
    shown) is at most ``max_similarity``; only when every remaining candidate is a near-duplicate
    does the least similar one go next. ``features`` rows must be L2-normalised.
    """
    margins = np.asarray(margins, dtype=np.float64)
    if features.shape[0] != len(margins):
        raise ValueError(f"{features.shape[0]} feature rows for {len(margins)} margins")
    pool = min(len(margins), max(count, candidates or 4 * count))
    order = np.argsort(margins, kind="stable")[:pool]
    rows = features[order]
    similarity = _cosines(rows, rows)
    nearest = np.zeros(pool)
    if avoid is not None and avoid.shape[0]:
        nearest = _cosines(rows, avoid).max(axis=1)
    remaining = np.ones(pool, dtype=bool)
    picked: list[int] = []
    for _ in range(min(count, pool)):
        fresh = np.flatnonzero(remaining & (nearest <= max_similarity))
        if len(fresh):
            choice = fresh[0]  # order is by margin, so the first fresh one is the most uncertain
        else:
            left = np.flatnonzero(remaining)
            choice = left[np.argmin(nearest[left])]
        picked.append(int(order[choice]))
        remaining[choice] = False
        nearest = np.maximum(nearest, similarity[choice])
    return picked
