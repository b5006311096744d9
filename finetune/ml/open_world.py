"""The pipeline's open-world steps: the no-intent corpus as training data, the OOD check, languages.

Kept beside pipeline.py so the closed-world flow there stays readable; pure ML, no Django.
"""

from __future__ import annotations

import numpy as np
import torch

from .artifact_format import NO_INTENT, OodCheck
from .config import TrainConfig
from .data import collate, device_of, length_sorted_batches
from .language import languages_summary, supported_languages
from .model import MeanPooledClassifier
from .no_intent import Corpus, claimed_by_labelled, corpus_split, load_corpus, normalise, with_small_talk


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


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
    lines = load_corpus()
    vectors = frozen_encoder(config, encode_texts, pad_id) if config.no_intent_similarity <= 1 else None
    claimed = claimed_by_labelled(lines, labelled, vectors, config.no_intent_similarity)
    return corpus_split(lines, claimed, holdout=config.no_intent_holdout, seed=config.seed)


def add_no_intent(config: TrainConfig, data, labelled: list[str], helpdesk: list[str], encode_texts, pad_id: int) -> None:
    """The reserved label in train: the helpdesk's "not a request" lines, then corpus lines, plus
    labelled texts with small talk attached. `data` is the pipeline's Prepared, changed in place."""
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


def ood_check(val_logits: np.ndarray, in_scope_pass: float) -> OodCheck | None:
    """Max-logit check: the threshold passes `in_scope_pass` of the in-scope validation texts.

    Chosen over the pooled vectors' centroid cosine, Mahalanobis and energy by CLINC150 AUROC /
    FPR at 95 % recall (see the report); it costs nothing at serving time. None without validation.
    """
    if len(val_logits) == 0 or in_scope_pass >= 1:
        return None
    scores = val_logits.max(axis=1)
    threshold = float(np.quantile(scores, 1 - in_scope_pass, method="lower"))
    return OodCheck("max_logit", threshold, float((scores >= threshold).mean()))


def held_back_share(probs: np.ndarray, in_scope: np.ndarray | None, labels: list[str], ood: OodCheck | None,
                    threshold: float) -> float | None:
    """Share of texts not routed to a team: no-intent wins, out of scope, or below the triage threshold."""
    if len(probs) == 0:
        return None
    no_intent = probs.argmax(1) == labels.index(NO_INTENT) if NO_INTENT in labels else np.zeros(len(probs), bool)
    out = in_scope < ood.threshold if ood is not None and in_scope is not None else np.zeros(len(probs), bool)
    return float((no_intent | out | (probs.max(1) < threshold)).mean())


def evaluate_open_world(config: TrainConfig, data, scorer, calibration: dict) -> tuple[OodCheck | None, dict]:
    """The OOD check (fitted on the served scores, hybrid.ServedScorer) and the report's held-back shares.

    Held back = not routed to a team: no-intent wins, out of scope, or below the triage threshold.
    """
    from .calibrate import softmax

    def logits_of(name: str) -> np.ndarray:
        return scorer.logits(data.ids.get(name) or [], data.texts.get(name) or [])

    ood = ood_check(logits_of("val"), config.ood_in_scope_pass)
    figures = {"ood": None if ood is None else {"method": ood.method, "threshold": ood.threshold,
                                                  "val_in_scope_pass": ood.in_scope_pass}}
    for name in (data.eval_split, "no_intent_heldout", "out_of_scope"):
        logits = logits_of(name).reshape(-1, len(data.labels))
        probs = softmax(logits, calibration["temperature"])
        share = held_back_share(probs, logits.max(axis=1), data.labels, ood, calibration["triage_threshold"])
        figures[f"held_back_{'in_scope' if name == data.eval_split else name}"] = {"share": share, "n": len(logits)}
    return ood, figures


def training_languages(config: TrainConfig, labelled: list[str]) -> dict:
    """Tickets per detected language, the supported set, and the confidence a refusal needs."""
    counts = languages_summary(list(labelled))
    supported = supported_languages(counts, min_share=config.language_min_share, min_count=config.language_min_count)
    return {"counts": counts, "supported": supported, "min_confidence": config.language_min_confidence}
