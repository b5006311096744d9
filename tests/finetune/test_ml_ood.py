"""The Mahalanobis out-of-scope check: its math, its calibration, its artifact round trip."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.ml.artifact_format import (
    CENTROIDS_FILE,
    FORMAT_VERSION,
    NO_INTENT,
    WHITENER_FILE,
    OodCheck,
    Serving,
    read_serving,
    write_serving,
)
from finetune.ml.config import TrainConfig
from finetune.ml.errors import ArtifactFormatError, ConfigError
from finetune.ml.ood import (
    auroc,
    fit_mahalanobis,
    fpr_at_recall,
    in_scope_scores,
    loss_threshold,
)
from finetune.ml.open_world import ood_check

LABELS = ["billing", "bugs", "shipping", NO_INTENT]


def clusters(seed: int = 0, per: int = 200, dim: int = 6):
    """Three teams' vectors around distinct means, correlated noise; labels 0..2."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim))
    means = rng.normal(scale=4, size=(3, dim))
    y = np.repeat(np.arange(3), per)
    return means[y] + rng.normal(size=(len(y), dim)) @ mix, y


def reference_scores(vectors, y, queries, shrinkage):
    """Minus the smallest squared Mahalanobis distance, by the textbook formula (explicit inverse)."""
    means = np.stack([vectors[y == c].mean(0) for c in np.unique(y)])
    centred = vectors - means[y]
    cov = centred.T @ centred / len(vectors)
    cov = (1 - shrinkage) * cov + shrinkage * np.eye(len(cov)) * np.trace(cov) / len(cov)
    inverse = np.linalg.inv(cov)
    return np.array([-min((q - m) @ inverse @ (q - m) for m in means) for q in queries])


@pytest.mark.parametrize("shrinkage", [0.0, 0.3])
def test_the_score_is_minus_the_smallest_squared_mahalanobis_distance(shrinkage):
    """The pre-whitened arrays give the textbook distance to the nearest team mean under the shared covariance."""
    vectors, y = clusters()
    queries = np.random.default_rng(1).normal(scale=5, size=(40, vectors.shape[1]))
    means, whitener = fit_mahalanobis(vectors, y, shrinkage)
    check = OodCheck("mahalanobis", 0.0, 1.0, means, whitener)
    got = in_scope_scores(check, np.zeros((40, 3)), queries.astype(np.float32))
    assert got == pytest.approx(reference_scores(vectors, y, queries, shrinkage), rel=1e-3, abs=1e-2)


def test_max_logit_and_centroid_cosine_scores_match_their_definitions():
    """The older methods keep their scores: the largest logit; the best cosine to a unit centroid."""
    rng = np.random.default_rng(2)
    logits, pooled, centroids = rng.normal(size=(5, 4)), rng.normal(size=(5, 8)), np.eye(4, 8)
    assert in_scope_scores(OodCheck("max_logit", 0, 1), logits, None) == pytest.approx(logits.max(1))
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    assert in_scope_scores(OodCheck("centroid_cosine", 0, 1, centroids), logits, pooled) == pytest.approx(
        unit[:, :4].max(1)
    )


def test_far_vectors_score_below_the_teams_own():
    """A vector far from every team scores lower than held-out vectors of the teams: AUROC near 1."""
    vectors, y = clusters(seed=3)
    check = OodCheck("mahalanobis", 0.0, 1.0, *fit_mahalanobis(vectors[::2], y[::2], 0.01))
    inside = in_scope_scores(check, np.zeros((300, 3)), vectors[1::2].astype(np.float32))
    outside = in_scope_scores(
        check, np.zeros((50, 3)), np.random.default_rng(4).normal(scale=30, size=(50, 6)).astype(np.float32)
    )
    assert auroc(inside, outside) > 0.99 and fpr_at_recall(inside, outside, 0.95) < 0.05


def test_auroc_counts_ties_half():
    """AUROC is the Mann-Whitney share, ties half: identical scores give 0.5."""
    assert auroc(np.array([1.0, 2.0]), np.array([0.0, 3.0])) == 0.5
    assert auroc(np.ones(3), np.ones(4)) == 0.5
    assert auroc(np.array([2.0, 3.0]), np.array([1.0])) == 1.0


@pytest.mark.parametrize("share", [0.8, 0.95])
def test_calibration_passes_the_configured_share_of_validation_texts(share):
    """The threshold is fitted on the train vectors (teams only) and passes the chosen share of validation."""
    vectors, y = clusters(seed=5, per=300)
    train, val = (vectors[::2], y[::2]), vectors[1::2].astype(np.float32)
    labels_y = np.where(np.arange(len(train[1])) % 10 == 0, LABELS.index(NO_INTENT), train[1])  # a few no-intent rows
    config = TrainConfig(
        base_model="unused", ood_method="mahalanobis", ood_in_scope_pass=share, ood_max_accuracy_loss=0
    )
    check = ood_check(config, (np.zeros((len(val), 4)), val, None), (train[0], labels_y), LABELS)
    passed = (in_scope_scores(check, np.zeros((len(val), 4)), val) >= check.threshold).mean()
    assert check.method == "mahalanobis" and check.centroids.shape == (3, 6) and check.whitener.shape == (6, 6)
    assert passed == pytest.approx(share, abs=0.01) and check.in_scope_pass == pytest.approx(passed)
    assert ood_check(config, (np.zeros((0, 4)), val[:0], None), train, LABELS) is None


def test_the_accuracy_budget_holds_back_at_most_that_share_of_correct_texts():
    """With ood_max_accuracy_loss, the threshold is the highest losing at most that share of correct texts."""
    rng = np.random.default_rng(6)
    scores, correct = rng.normal(size=1000), rng.random(1000) < 0.9
    for budget in (0.01, 0.05):
        threshold = loss_threshold(scores, correct, budget)
        assert (correct & (scores < threshold)).mean() <= budget
        above = scores[scores > threshold].min()  # the next threshold up loses more than the budget
        assert (correct & (scores < above)).mean() > budget


def test_the_mix_adds_both_scores_each_over_its_validation_deviation():
    """mahalanobis_max_logit = maha / sd_val(maha) + max_logit / sd_val(max_logit), calibrated to the budget."""
    vectors, y = clusters(seed=7, per=300)
    rng = np.random.default_rng(8)
    val, val_logits = vectors[1::2].astype(np.float32), rng.normal(size=(450, 4))
    correct = rng.random(450) < 0.9
    check = ood_check(TrainConfig(base_model="unused"), (val_logits, val, correct), (vectors[::2], y[::2]), LABELS)
    maha = reference_scores(vectors[::2], y[::2], val, 0.3)
    expected = maha / maha.std() + val_logits.max(1) / val_logits.max(1).std()
    got = in_scope_scores(check, val_logits, val)
    assert check.method == "mahalanobis_max_logit" and got == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert (correct & (got < check.threshold)).mean() <= 0.01 and (got < check.threshold).any()


def test_an_unknown_method_or_shrinkage_is_refused():
    """Config errors name the allowed values."""
    with pytest.raises(ConfigError, match="mahalanobis"):
        TrainConfig(base_model="unused", ood_method="energy")
    with pytest.raises(ConfigError, match="ood_shrinkage"):
        TrainConfig(base_model="unused", ood_shrinkage=1.5)


def mahalanobis_serving() -> Serving:
    vectors, y = clusters()
    check = OodCheck("mahalanobis_max_logit", -12.5, 0.95, *fit_mahalanobis(vectors, y, 0.01), mix=(0.1, 2.0))
    return Serving(FORMAT_VERSION, 64, 1.0, 0.5, LABELS, NO_INTENT, check, None, 0.75)


def test_a_mahalanobis_check_round_trips_with_both_arrays(tmp_path):
    """Both arrays are written as .npy, named in serving.json, and read back bit for bit."""
    serving = mahalanobis_serving()
    write_serving(tmp_path, serving)
    back = read_serving(tmp_path)
    assert back == serving and back.ood.method == "mahalanobis_max_logit" and back.ood.mix == (0.1, 2.0)
    assert np.array_equal(back.ood.centroids, serving.ood.centroids) and np.array_equal(
        back.ood.whitener, serving.ood.whitener
    )
    assert (tmp_path / CENTROIDS_FILE).is_file() and (tmp_path / WHITENER_FILE).is_file()


def test_a_mahalanobis_check_with_a_missing_or_misshapen_whitener_is_refused(tmp_path):
    """A lost or wrong-shaped whitener stops the artifact from loading, with the shapes in the message."""
    write_serving(tmp_path, mahalanobis_serving())
    np.save(tmp_path / WHITENER_FILE, np.eye(5, dtype=np.float32))
    with pytest.raises(ArtifactFormatError, match=r"whitener \(5, 5\)"):
        read_serving(tmp_path)
    (tmp_path / WHITENER_FILE).unlink()
    with pytest.raises(ArtifactFormatError, match="ood block"):
        read_serving(tmp_path)
    with pytest.raises(ArtifactFormatError, match="no whitener"):
        write_serving(
            tmp_path, Serving(2, 64, 1.0, 0.5, LABELS, NO_INTENT, OodCheck("mahalanobis", 0, 1, np.eye(3, 6)), None)
        )


def test_too_few_train_tickets_for_a_covariance_fall_back_to_max_logit():
    """Fewer labelled train vectors than 2 per dimension: the check is max_logit, calibrated all the same."""
    vectors, y = clusters(seed=9, per=3)  # 9 vectors in 6 dimensions
    logits = np.random.default_rng(10).normal(size=(9, 4))
    check = ood_check(TrainConfig(base_model="unused"), (logits, vectors, np.ones(9, bool)), (vectors, y), LABELS)
    assert check.method == "max_logit" and check.whitener is None and check.threshold <= logits.max(1).min()
