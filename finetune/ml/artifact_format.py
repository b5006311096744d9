"""The serving files of an artifact, written by the pipeline and read by the router: one definition.

Format 4 (written now): format 3 plus ``message_body``: true when the models were trained on, and
so must read, each text's message body (window.message_body: no quoted replies, signature or
footer) rather than the whole text. Formats 1 to 3 read whole texts.
Format 3: format 2 plus an optional ``hybrid`` block, present when the served
scores are the student's logits plus ``tfidf_weight`` × the TF-IDF + LR log-probabilities
(tfidf.py), on ``max_chars`` of a long text (window.window_text; absent in older artifacts:
the whole text): ``tfidf_vocabulary.json`` (each analyzer's kind, n-gram range and terms in column
order) and ``tfidf.npz`` (``idf_<i>`` per analyzer, ``coef`` [features, classes], ``intercept``,
``classes``: label indices), read without pickle. No block: the student alone, as in format 2.
Format 2: serving.json with the keys of ``Serving`` (labels include the reserved
no-intent label, an ``ood`` block, a ``languages`` block, ``window_head``). The OOD check is
``max_logit`` (no array); a ``centroid_cosine`` check also reads ``ood_centroids.npy`` (float32
[labels, hidden], unit-length class means of the ONNX model's ``pooled`` output); a ``mahalanobis``
check reads ``ood_centroids.npy`` (float32 [teams, hidden], whitened team means) and
``ood_whitener.npy`` (float32 [hidden, hidden]); ``mahalanobis_max_logit`` reads both and a
``mix`` of two weights; finetune.ml.ood computes the scores. A release
that predates a method refuses the artifact naming it, so the method needs no format bump.
Format 1 (older artifacts) still loads: no reserved label, no OOD check, no languages.
Formats 1 and 2 never have a hybrid block.
A newer format is refused: this release cannot know what it would have to check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ArtifactFormatError
from .tfidf import Analyzer, Hybrid, TfidfModel

FORMAT_VERSION = 4
SERVING_FILE = "serving.json"
LABELS_FILE = "labels.json"
CENTROIDS_FILE = "ood_centroids.npy"
TFIDF_VOCABULARY_FILE = "tfidf_vocabulary.json"
TFIDF_ARRAYS_FILE = "tfidf.npz"
ANALYZER_KINDS = ("word", "char_wb")  # what tfidf.Analyzer reproduces
WHITENER_FILE = "ood_whitener.npy"
OOD_METHODS = ("max_logit", "centroid_cosine", "mahalanobis", "mahalanobis_max_logit")
# The reserved label of "no request in this message" (greetings, thanks, chit-chat). "~" cannot
# occur in a team slug ([-a-zA-Z0-9_]+) and sorts after every slug character: labels stay sorted.
NO_INTENT = "~no_intent"


@dataclass(frozen=True)
class OodCheck:
    """Out-of-scope when the in-scope score is below `threshold`.

    The score (finetune.ml.ood): "max_logit", the largest raw logit; "centroid_cosine", the pooled
    vector's best cosine to a class centroid (needs `centroids`); "mahalanobis", minus the smallest
    squared distance of the whitened pooled vector to a whitened team mean (needs both arrays);
    "mahalanobis_max_logit", that and the max logit, each weighted by `mix` (z-scored on validation).
    """

    method: str  # one of OOD_METHODS
    threshold: float
    in_scope_pass: float  # the share of in-scope validation texts at or above the threshold
    centroids: np.ndarray | None = field(default=None, compare=False, repr=False)
    whitener: np.ndarray | None = field(default=None, compare=False, repr=False)  # mahalanobis only
    # mahalanobis_max_logit: the weights of the two scores (1 / their validation standard deviations)
    mix: tuple[float, float] | None = None


@dataclass(frozen=True)
class Serving:
    format: int
    max_length: int
    temperature: float
    triage_threshold: float
    labels: list[str]
    no_intent_label: str | None = None
    ood: OodCheck | None = None
    languages: dict | None = None  # {"counts": {code: n}, "supported": [codes], "min_confidence": p}
    window_head: float | None = None  # share of the token window kept from a long text's start
    hybrid: Hybrid | None = None  # served scores = student logits + weight × TF-IDF log-probabilities
    message_body: bool = False  # every text is read as window.message_body(text) first (format 4)

    @property
    def teams(self) -> list[str]:
        """The labels that are team slugs (reserved labels left out)."""
        return [label for label in self.labels if label != self.no_intent_label]


def write_serving(directory: Path, serving: Serving) -> None:
    """serving.json, labels.json and the OOD centroids (if any) into `directory`."""
    directory = Path(directory)
    body = asdict(serving)
    body["format"] = FORMAT_VERSION
    if serving.ood is not None:
        body["ood"] = _write_ood_arrays(directory, serving.ood)
    body["hybrid"] = None if serving.hybrid is None else _write_hybrid(directory, serving.hybrid)
    (directory / SERVING_FILE).write_text(json.dumps(body, indent=2) + "\n")
    (directory / LABELS_FILE).write_text(json.dumps(serving.labels, indent=2) + "\n")


def _write_hybrid(directory: Path, hybrid: Hybrid) -> dict:
    model = hybrid.model
    vocabularies = [
        {"kind": a.kind, "ngrams": list(a.ngrams), "terms": sorted(a.vocabulary, key=a.vocabulary.__getitem__)}
        for a in model.analyzers
    ]
    (directory / TFIDF_VOCABULARY_FILE).write_text(json.dumps({"analyzers": vocabularies}, ensure_ascii=False) + "\n")
    arrays = {f"idf_{i}": a.idf for i, a in enumerate(model.analyzers)}
    np.savez(directory / TFIDF_ARRAYS_FILE, coef=model.coef, intercept=model.intercept, classes=model.classes, **arrays)
    return {
        "tfidf_weight": hybrid.weight,
        "max_chars": model.max_chars,
        "vocabulary": TFIDF_VOCABULARY_FILE,
        "arrays": TFIDF_ARRAYS_FILE,
    }


def _read_hybrid(directory: Path, block: dict | None, labels: list[str]) -> Hybrid | None:
    if block is None:
        return None
    try:
        vocabularies = _read_json(directory / block["vocabulary"])["analyzers"]
        with np.load(directory / block["arrays"], allow_pickle=False) as arrays:
            analyzers = tuple(
                Analyzer(
                    v["kind"],
                    (int(v["ngrams"][0]), int(v["ngrams"][1])),
                    {term: i for i, term in enumerate(v["terms"])},
                    arrays[f"idf_{i}"].astype(np.float64),
                )
                for i, v in enumerate(vocabularies)
            )
            max_chars = block.get("max_chars")  # absent before round 10: the whole text
            if max_chars is not None and (type(max_chars) is not int or max_chars < 2):
                raise ValueError(f"max_chars must be an integer of at least 2, got {max_chars!r}")
            model = TfidfModel(
                analyzers, arrays["coef"], arrays["intercept"], arrays["classes"], len(labels), max_chars
            )
        weight = float(block["tfidf_weight"])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ArtifactFormatError(f"{directory}: the hybrid block of serving.json is unreadable: {exc!r}") from exc
    _check_tfidf(directory, model)
    return Hybrid(weight, model)


def _check_tfidf(directory: Path, model: TfidfModel) -> None:
    """Shapes that agree with each other and with the labels: a wrong file fails at load, not per request."""
    features = sum(len(a.idf) for a in model.analyzers)
    columns = 1 if len(model.classes) == 2 else len(model.classes)
    problems = [
        any(a.kind not in ANALYZER_KINDS or len(a.vocabulary) != len(a.idf) for a in model.analyzers),
        model.coef.shape != (features, columns),
        model.intercept.shape != (columns,),
        len(model.classes) < 2 or model.classes.min() < 0 or model.classes.max() >= model.num_labels,
    ]
    if any(problems):
        raise ArtifactFormatError(
            f"{directory}: the TF-IDF files disagree: analyzers {[a.kind for a in model.analyzers]}, "
            f"{features} features, coef {model.coef.shape}, classes {model.classes.tolist()} of {model.num_labels} labels"
        )


def _write_ood_arrays(directory: Path, check: OodCheck) -> dict:
    """The check's arrays as .npy files; its serving.json block names them."""
    block = {"method": check.method, "threshold": check.threshold, "in_scope_pass": check.in_scope_pass}
    if check.mix is not None:
        block["mix"] = list(check.mix)
    pair = {"file": ("centroids", CENTROIDS_FILE), "whitener_file": ("whitener", WHITENER_FILE)}
    arrays = {
        "centroid_cosine": {"file": ("centroids", CENTROIDS_FILE)},
        "mahalanobis": pair,
        "mahalanobis_max_logit": pair,
    }
    for key, (name, filename) in arrays.get(check.method, {}).items():
        if getattr(check, name) is None:
            raise ArtifactFormatError(f"The {check.method} OOD check has no {name} to write.")
        np.save(directory / filename, np.asarray(getattr(check, name), dtype=np.float32))
        block[key] = filename
    return block


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactFormatError(f"{path}: cannot read JSON: {exc}") from exc


def _check_labels(directory: Path, body: dict) -> list[str]:
    labels = _read_json(directory / LABELS_FILE)
    if not isinstance(labels, list) or not labels or body.get("labels", labels) != labels or labels != sorted(labels):
        raise ArtifactFormatError(f"{directory}: labels.json and serving.json labels disagree or are unsorted")
    return labels


def _read_ood(directory: Path, block: dict | None, labels: list[str]) -> OodCheck | None:
    if block is None:
        return None
    if block.get("method") == "max_logit":
        try:
            return OodCheck("max_logit", float(block["threshold"]), float(block["in_scope_pass"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactFormatError(f"{directory}: the ood block of serving.json is unreadable: {exc!r}") from exc
    try:
        centroids = np.load(directory / block["file"], allow_pickle=False)
        whitener = np.load(directory / block["whitener_file"], allow_pickle=False) if "whitener_file" in block else None
        mix = tuple(float(w) for w in block["mix"]) if "mix" in block else None
        check = OodCheck(
            block["method"], float(block["threshold"]), float(block["in_scope_pass"]), centroids, whitener, mix
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactFormatError(f"{directory}: the ood block of serving.json is unreadable: {exc!r}") from exc
    if not _arrays_fit(check, len(labels)):
        shapes = f"centroids {centroids.shape}" + ("" if whitener is None else f", whitener {whitener.shape}")
        raise ArtifactFormatError(
            f"{directory}: ood method {check.method!r} with {shapes}; expected 'max_logit', 'centroid_cosine' "
            f"with {len(labels)} rows, or 'mahalanobis' (+ '_max_logit' with a mix of 2 weights) with at most {len(labels)} rows and a square whitener as wide"
        )
    return check


def _arrays_fit(check: OodCheck, labels: int) -> bool:
    centroids, whitener = check.centroids, check.whitener
    if check.method == "centroid_cosine":
        return centroids.ndim == 2 and len(centroids) == labels and whitener is None
    if check.method == "mahalanobis_max_logit" and (check.mix is None or len(check.mix) != 2):
        return False
    return (
        check.method in ("mahalanobis", "mahalanobis_max_logit")
        and whitener is not None
        and centroids.ndim == 2
        and whitener.ndim == 2
        and 0 < len(centroids) <= labels
        and whitener.shape == (centroids.shape[1],) * 2
    )


def _read_flag(directory: Path, body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ArtifactFormatError(f"{directory}: serving.json {key} must be true or false, got {value!r}")
    return value


def read_serving(directory: Path) -> Serving:
    """Read and check serving.json (formats 1 to 4) and its labels and arrays."""
    directory = Path(directory)
    body = _read_json(directory / SERVING_FILE)
    version = body.get("format") if isinstance(body, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ArtifactFormatError(f"{directory}: serving.json has format {version!r}; expected 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise ArtifactFormatError(
            f"{directory}: serving.json is format {version}, newer than this release reads (1..{FORMAT_VERSION}); "
            "upgrade Switchboard or activate a model trained by this release"
        )
    labels = _check_labels(directory, body)
    no_intent = body.get("no_intent_label") if version >= 2 else None
    if no_intent is not None and no_intent not in labels:
        raise ArtifactFormatError(f"{directory}: no_intent_label {no_intent!r} is not among the labels")
    try:
        return Serving(
            format=version,
            max_length=int(body.get("max_length", 64)),
            temperature=float(body.get("temperature") or 1.0),
            triage_threshold=float(body.get("triage_threshold", 1.0)),
            labels=labels,
            no_intent_label=no_intent,
            ood=_read_ood(directory, body.get("ood"), labels) if version >= 2 else None,
            languages=body.get("languages") if version >= 2 else None,
            window_head=body.get("window_head") if version >= 2 else None,
            hybrid=_read_hybrid(directory, body.get("hybrid"), labels) if version >= 3 else None,
            message_body=_read_flag(directory, body, "message_body") if version >= 4 else False,
        )
    except (TypeError, ValueError) as exc:
        raise ArtifactFormatError(f"{directory}: serving.json has a bad value: {exc}") from exc
