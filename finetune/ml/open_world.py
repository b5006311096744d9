"""The pipeline's open-world steps: the no-intent corpus as training data, the OOD check, languages.

Kept beside pipeline.py so the closed-world flow there stays readable; pure ML, no Django.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .artifact_format import NO_INTENT, OodCheck
from .config import TrainConfig
from .data import collate, device_of, length_sorted_batches
from .language import languages_summary, supported_languages
from .model import MeanPooledClassifier
from .no_intent import (
    OFF_TOPIC_CORPUS,
    Corpus,
    claimed_by_labelled,
    corpus_split,
    load_corpus,
    no_intent_lines,
    normalise,
    with_small_talk,
)
from .onnx_batches import onnx_run
from .ood import (
    auroc,
    fit_mahalanobis,
    fpr_at_recall,
    in_scope_scores,
    loss_threshold,
    mahalanobis_scores,
    pass_threshold,
    unit_rows,
)


@torch.no_grad()
def pooled_vectors(model: MeanPooledClassifier, ids: list[list[int]], pad_id: int) -> np.ndarray:
    """Unit-length mean-pooled vectors of `model` for every text, in input order."""
    model.eval()
    device = device_of(model)
    out = np.zeros((len(ids), model.classifier.in_features), dtype=np.float32)
    for idx in length_sorted_batches(ids, 128):
        out[idx] = model.pooled(*(t.to(device) for t in collate([ids[i] for i in idx], pad_id))).float().cpu().numpy()
    return unit_rows(out)


def frozen_encoder(config: TrainConfig, encode_texts, pad_id: int):
    """texts -> unit vectors of the untouched base encoder (the similarity test of labelled-data-wins)."""
    model = MeanPooledClassifier.from_pretrained(config.base_model, 1, seed=config.seed)
    return lambda texts: pooled_vectors(model, encode_texts(texts), pad_id)


def no_intent_corpus(config: TrainConfig, labelled: list[str], encode_texts, pad_id: int) -> Corpus | None:
    """The shipped corpus minus what labelled tickets claim, split into train and held-out lines."""
    if not config.no_intent:
        return None
    lines = no_intent_lines()
    vectors = frozen_encoder(config, encode_texts, pad_id) if config.no_intent_similarity <= 1 else None
    claimed = claimed_by_labelled(lines, labelled, vectors, config.no_intent_similarity)
    return corpus_split(lines, claimed, holdout=config.no_intent_holdout, seed=config.seed)


def add_no_intent(
    config: TrainConfig, data, labelled: list[str], helpdesk: list[str], encode_texts, pad_id: int
) -> None:
    """The reserved label in train: the helpdesk's "not a request" lines, then corpus lines, plus
    labelled texts with small talk attached. `data` is a prepared.Prepared, changed in place."""
    data.labelled_train = len(data.texts["train"])
    corpus = no_intent_corpus(config, labelled, encode_texts, pad_id)
    if corpus is None:
        if helpdesk:
            data.notes.append(f"{len(helpdesk)} 'not a request' tickets were not trained on: no_intent is off.")
        return
    # A text labelled to a team wins over the same text marked "not a request", as over the corpus.
    teams_say = {normalise(text) for text in labelled}
    corpus.helpdesk = [text for text in dict.fromkeys(helpdesk) if normalise(text) not in teams_say]
    # At most as many corpus lines as labelled train tickets (the helpdesk's own lines always go in):
    # a small helpdesk's teams are not drowned.
    corpus.train = corpus.helpdesk + corpus.train[: max(0, data.labelled_train - len(corpus.helpdesk))]
    old = data.labels
    data.labels = sorted(set(old) | {NO_INTENT})
    data.y = {s: [data.labels.index(old[i]) for i in y] for s, y in data.y.items()}
    data.corpus = corpus
    extra_texts, extra_y = with_small_talk(
        data.texts["train"], data.y["train"], corpus.train, share=config.small_talk_share, seed=config.seed
    )
    data.texts["train"] += extra_texts + corpus.train
    data.y["train"] += extra_y + [data.labels.index(NO_INTENT)] * len(corpus.train)
    if corpus.dropped:
        data.notes.append(f"{len(corpus.dropped)} no-intent corpus lines were dropped: labelled tickets match them.")


# Mahalanobis needs this many labelled train tickets per pooled dimension (768 for MiniLM's 384):
# with fewer, the check falls back to the max logit (a tiny model's few tickets scored in-scope texts out).
MIN_FIT_PER_DIMENSION = 2


def ood_check(config: TrainConfig, val: tuple, train: tuple | None, labels: list[str]) -> OodCheck | None:
    """The configured check, calibrated on in-scope validation texts only (see TrainConfig.ood_*).

    val = (logits, pooled, correct) of the validation texts (correct: the argmax is the gold label;
    None for a pass-share threshold); train = (pooled, label indices) of the labelled train tickets,
    the Mahalanobis fit's data (team labels only; too few of them and the check is max_logit). The
    default method was chosen on CLINC150 (docs/experiments.md). None without validation or with
    ood_in_scope_pass = 1.
    """
    val_logits, val_pooled, correct = val
    if len(val_logits) == 0 or config.ood_in_scope_pass >= 1:
        return None
    check = fitted_check(config, val_logits, val_pooled, train, labels)
    scores = in_scope_scores(check, val_logits, val_pooled)
    if config.ood_max_accuracy_loss > 0 and correct is not None:
        threshold = loss_threshold(scores, np.asarray(correct, bool), config.ood_max_accuracy_loss)
    else:
        threshold = pass_threshold(scores, config.ood_in_scope_pass)[0]
    return replace(check, threshold=threshold, in_scope_pass=float((scores >= threshold).mean()))


def fitted_check(config: TrainConfig, val_logits, val_pooled, train, labels: list[str]) -> OodCheck:
    """The check's arrays (and for the mix, each score's weight: 1 / its validation deviation); no threshold yet."""
    if config.ood_method == "max_logit":
        return OodCheck("max_logit", 0.0, 1.0)
    if config.ood_method == "centroid_cosine":
        return OodCheck(
            "centroid_cosine", 0.0, 1.0, class_centroids(unit_rows(train[0]), np.asarray(train[1]), len(labels))
        )
    teams = np.asarray(train[1]) != (labels.index(NO_INTENT) if NO_INTENT in labels else -1)
    if teams.sum() < MIN_FIT_PER_DIMENSION * train[0].shape[1]:  # too few tickets for a covariance
        return OodCheck("max_logit", 0.0, 1.0)
    means, whitener = fit_mahalanobis(train[0][teams], np.asarray(train[1])[teams], config.ood_shrinkage)
    check = OodCheck("mahalanobis", 0.0, 1.0, means, whitener)
    if config.ood_method == "mahalanobis":
        return check
    spread = [mahalanobis_scores(check, val_pooled).std(), val_logits.max(axis=1).std()]
    return replace(check, method="mahalanobis_max_logit", mix=tuple(1 / max(float(s), 1e-12) for s in spread))


def class_centroids(vectors: np.ndarray, y: np.ndarray, count: int) -> np.ndarray:
    """Unit-length mean of each label's unit vectors (zeros for a label without train texts)."""
    out = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    for label in np.unique(y):
        out[label] = vectors[y == label].mean(axis=0)
    return unit_rows(out).astype(np.float32)


def onnx_outputs(session, ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled) of the ONNX model per text, in input order, from one run per batch."""
    logits, pooled = onnx_run(session, ids, pad_id, ["logits", "pooled"], 128)
    return logits, pooled


def served_outputs(scorer, ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(served logits, pooled) per text: one ONNX run, plus the hybrid's TF-IDF term when it serves
    (scorer: hybrid.ServedScorer), so the OOD check is fitted and judged on what the router computes."""
    logits, pooled = onnx_outputs(scorer.session, ids, scorer.pad_id)
    if scorer.hybrid is not None and texts:
        logits = scorer.hybrid.logits(logits.astype(np.float64), texts)
    return logits, pooled


def held_back_share(
    probs: np.ndarray, in_scope: np.ndarray | None, labels: list[str], ood: OodCheck | None, threshold: float
) -> float | None:
    """Share of texts not routed to a team: no-intent wins, out of scope, or below the triage threshold."""
    if len(probs) == 0:
        return None
    no_intent = probs.argmax(1) == labels.index(NO_INTENT) if NO_INTENT in labels else np.zeros(len(probs), bool)
    out = in_scope < ood.threshold if ood is not None and in_scope is not None else np.zeros(len(probs), bool)
    return float((no_intent | out | (probs.max(1) < threshold)).mean())


def evaluate_open_world(config: TrainConfig, data, scorer, calibration: dict) -> tuple[OodCheck | None, dict]:
    """The OOD check (fitted on the served scores, hybrid.ServedScorer) and the report's held-back shares.

    Held back = not routed to a team: no-intent wins, out of scope, or below the triage threshold.
    The off-topic corpus (requests no helpdesk team handles) is never trained on: a held-back figure.
    """
    from .calibrate import softmax

    labels, n = data.labels, data.labelled_train

    def outputs(name: str) -> tuple[np.ndarray, np.ndarray]:
        return served_outputs(scorer, data.ids.get(name) or [], data.texts.get(name) or [])

    train = (onnx_outputs(scorer.session, data.ids["train"][:n], scorer.pad_id)[1], data.y["train"][:n])
    val_logits, val_pooled = outputs("val")
    correct = val_logits.argmax(axis=1) == np.asarray(data.y["val"], dtype=np.int64)
    ood = ood_check(config, (val_logits, val_pooled, correct), train, labels)
    figures = {
        "ood": None
        if ood is None
        else {"method": ood.method, "threshold": ood.threshold, "val_in_scope_pass": ood.in_scope_pass}
    }
    scores = {}
    for name in (data.eval_split, "no_intent_heldout", "out_of_scope", "off_topic"):
        logits, pooled = outputs(name)
        scores[name] = None if ood is None or not len(logits) else in_scope_scores(ood, logits, pooled)
        share = held_back_share(
            softmax(logits, calibration["temperature"]), scores[name], labels, ood, calibration["triage_threshold"]
        )
        figures[f"held_back_{'in_scope' if name == data.eval_split else name}"] = {"share": share, "n": len(logits)}
    if scores[data.eval_split] is not None and scores["out_of_scope"] is not None:
        figures["out_of_scope_auroc"] = auroc(scores[data.eval_split], scores["out_of_scope"])
        figures["out_of_scope_fpr_at_95"] = fpr_at_recall(scores[data.eval_split], scores["out_of_scope"], 0.95)
    return ood, figures


def off_topic_lines() -> list[str]:
    """The shipped off-topic corpus: the report's held-back figure for requests no team handles."""
    return load_corpus(OFF_TOPIC_CORPUS)


def training_languages(config: TrainConfig, labelled: list[str]) -> dict:
    """Tickets per detected language, the supported set, and the confidence a refusal needs."""
    counts = languages_summary(list(labelled))
    supported = supported_languages(counts, min_share=config.language_min_share, min_count=config.language_min_count)
    return {"counts": counts, "supported": supported, "min_confidence": config.language_min_confidence}
