"""One model version, verified and opened: the immutable thing a request is answered by.

``LoadedModel.from_version`` works for any ModelVersion (active, shadow, candidate), so the
router and the shadow scorer share one definition of "load and verify an artifact".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort
from django.conf import settings
from tokenizers import Tokenizer

from chatbot.core.conf import model_store, setting
from chatbot.core.errors import SwitchboardError
from finetune.ml.artifact_format import Serving, read_serving
from finetune.ml.artifacts import verify_checksums
from finetune.ml.errors import ArtifactFormatError, ChecksumError
from finetune.ml.language import detect_language, warm_language_detector
from finetune.ml.onnx_batches import SERVE_BATCH, onnx_run
from finetune.ml.ood import POOLED_METHODS, in_scope_scores
from finetune.ml.window import message_body, sentences, window_ids
from routing.models import ModelVersion

REQUIRED_FILES = ("model.onnx", "tokenizer.json", "labels.json", "serving.json", "checksums")


class ArtifactError(SwitchboardError):
    """A model version's files are missing, corrupt or inconsistent: it must not serve."""

    code = "artifact_invalid"
    http_status = 409

    def __init__(self, message: str, **kwargs):
        # These messages reach API bodies and the anonymous health check: they name the store, not its path.
        super().__init__(message.replace(str(model_store()), "MODEL_STORE"), **kwargs)


REASONS = ("routed", "no_intent", "out_of_scope", "unsupported_language", "low_confidence")
# A text held back whole for one of these reasons is read again from its sentences that carry a
# request on their own: context around a question ("I have been a customer for years. I was
# travelling last week.") left the whole text unsure, out of scope or small talk (docs/experiments.md,
# context sentences).
REREAD_REASONS = frozenset({"low_confidence", "out_of_scope", "no_intent"})
# The first sentences read again, at most (an e-mail's request comes early; the cost stays bounded).
MAX_SENTENCES = 8


@dataclass(frozen=True)
class Prediction:
    """The router's answer for one text, and why.

    Precedence, first match wins: ``unsupported_language`` (the text is confidently in a language
    the model was not trained on; short or ambiguous texts never are), ``no_intent`` (the reserved
    no-intent label has the highest probability), ``out_of_scope`` (the OOD score is below the
    artifact's calibrated threshold), ``low_confidence`` (below the triage threshold, or the best
    team is unknown or inactive), else ``routed``. Format-1 artifacts only give the last two.
    """

    team: str | None  # best team slug; None for no_intent, out_of_scope and unsupported_language
    team_name: str | None
    confidence: float  # calibrated probability of the best team (of no-intent when reason is no_intent)
    triage: bool  # True for low_confidence, out_of_scope, unsupported_language
    reason: str  # one of REASONS
    language: str | None  # ISO 639-1 code when identified confidently, else None
    scores: dict[str, float]  # per team slug (reserved labels excluded); not renormalised
    model_version: str

    def as_dict(self) -> dict:
        """``dataclasses.asdict(self)`` without its recursive deep copy (a route answer's hot path)."""
        return {**self.__dict__, "scores": dict(self.scores)}


@dataclass(frozen=True)
class TeamInfo:
    name: str
    # The team's own triage threshold; None defers to the model's proposal, then the global value.
    triage_threshold: float | None
    # An inactive team has no inbox: a message predicted for it always goes to triage.
    active: bool = True
    # A merged team's label routes to the team it was merged into (routing.teams.team_merge).
    routes_to: str | None = None


def artifact_dir(version: ModelVersion) -> Path:
    return model_store() / version.artifact_dir


def artifact_verify(*, version: ModelVersion) -> Path:
    """Check every file against ``checksums`` and ``checksums`` against ModelVersion.sha256."""
    directory = artifact_dir(version)
    artifact_files_verify(directory=directory, version=str(version.pk), sha256=version.sha256)
    return directory


def artifact_files_verify(*, directory: Path, version: str, sha256: str) -> None:
    """Raise ArtifactError unless every required file is there and matches the registered checksums."""
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ArtifactError(f"model version {version}: missing {', '.join(missing)} in {directory}")
    try:
        actual = verify_checksums(directory)
    except ChecksumError as exc:
        raise ArtifactError(f"model version {version}: checksum mismatch: {exc}") from exc
    if actual != sha256:
        raise ArtifactError(
            f"model version {version}: checksum mismatch for checksums "
            f"(file {actual[:12]}..., registered {sha256[:12]}...)"
        )


def artifact_fingerprint(directory: Path) -> tuple | None:
    """(path, size, mtime) of every file, None when unreadable: a cheap sign of change since verification."""
    try:
        return tuple(
            sorted(
                (p.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns)
                for p in directory.rglob("*")
                if p.is_file()
                for stat in [p.stat()]
            )
        )
    except OSError:
        return None


def _intra_op_threads() -> int:
    # Optional key: one thread per session measured fastest per request with one process per core.
    overrides = getattr(settings, "SWITCHBOARD", {})
    return int(overrides.get("ROUTER_INTRA_OP_THREADS", 1))


def _open_tokenizer(directory: Path, max_length: int, windowed: bool) -> tuple[Tokenizer, int]:
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    pad_token = "[PAD]"
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        pad_token = json.loads(config_path.read_text(encoding="utf-8")).get("pad_token") or pad_token
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ArtifactError(f"{directory}: tokenizer has no pad token {pad_token!r}")
    # score() pads each batch it runs; window_ids cuts long texts, else (older formats) the tokenizer does.
    tokenizer.no_padding()
    if windowed:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, pad_id


def _read_format(directory: Path, version: ModelVersion) -> Serving:
    try:
        return read_serving(directory)
    except ArtifactFormatError as exc:
        raise ArtifactError(f"model version {version.pk}: {exc}") from exc


@dataclass(frozen=True)
class Scored:
    """One batch through the model: calibrated probabilities and, when the artifact has it, OOD scores."""

    probabilities: np.ndarray  # [texts, labels]
    in_scope: np.ndarray | None  # [texts] the OOD check's score (finetune.ml.ood.in_scope_scores)


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact with its ONNX session and tokenizer open. Never mutated after load.

    Temperature comes from the artifact (it is a property of these logits); the triage
    threshold proposal comes from the ModelVersion row (policy an operator may edit).
    """

    version: str
    sha256: str
    labels: tuple[str, ...]
    temperature: float
    max_length: int
    proposed_threshold: float | None
    session: ort.InferenceSession
    tokenizer: Tokenizer
    serving: Serving
    pad_id: int = 0
    directory: Path | None = None
    fingerprint: tuple | None = None  # artifact_fingerprint() when verified

    @classmethod
    def from_version(cls, version: ModelVersion, *, threads: int | None = None) -> LoadedModel:
        directory = artifact_verify(version=version)
        fingerprint = artifact_fingerprint(directory)
        serving = _read_format(directory, version)
        try:
            max_length = min(serving.max_length, int(setting("MAX_TOKENS")))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or _intra_op_threads()
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])
            tokenizer, pad_id = _open_tokenizer(directory, max_length, serving.window_head is not None)
        except (ValueError, KeyError, OSError, RuntimeError) as exc:
            raise ArtifactError(f"model version {version.pk}: cannot open artifact: {exc}") from exc
        if serving.languages:
            warm_language_detector()  # ~1.5 s once per process, at load rather than on a customer's message
        outputs = {output.name for output in session.get_outputs()}
        if serving.ood is not None and serving.ood.method in POOLED_METHODS and "pooled" not in outputs:
            raise ArtifactError(
                f"model version {version.pk}: serving.json has an OOD check but model.onnx no pooled output"
            )
        return cls(
            version=str(version.pk),
            sha256=version.sha256,
            labels=tuple(serving.labels),
            temperature=serving.temperature,
            max_length=max_length,
            proposed_threshold=version.proposed_triage_threshold,
            session=session,
            tokenizer=tokenizer,
            serving=serving,
            pad_id=pad_id,
            directory=directory,
            fingerprint=fingerprint,
        )

    def score(self, texts: list[str]) -> Scored:
        """Probabilities (softmax(served logits / temperature)) and OOD scores; texts must be non-empty.

        Served logits: the ONNX student's, plus the artifact's TF-IDF term when it serves a hybrid.
        """
        if self.serving.message_body:  # as the model was trained: window.message_body
            texts = [message_body(text) for text in texts]
        ood = self.serving.ood
        pooled = ood is not None and ood.method in POOLED_METHODS
        # A batch (the chat's routing batch, REST ``texts``) runs sorted by length: little padding.
        outputs = onnx_run(
            self.session, self.rows(texts), self.pad_id, ["logits", "pooled"] if pooled else ["logits"], SERVE_BATCH
        )
        logits = outputs[0].astype(np.float64)
        if self.serving.hybrid is not None:  # + weight × TF-IDF log-probabilities (finetune.ml.tfidf, numpy)
            logits = self.serving.hybrid.logits(logits, texts)
        scaled = logits / self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        # The training pipeline's own function on the served logits: calibrated and served scores agree.
        in_scope = None if ood is None else in_scope_scores(ood, logits, outputs[1] if pooled else None)
        return Scored(exp / exp.sum(axis=1, keepdims=True), in_scope)

    def rows(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text as the model reads them (windowed as the training's window_ids), unpadded."""
        # One text (every chat message, most API calls): encode() skips encode_batch's thread pool
        # hand-off, which cost more than the tokenizing itself inside a busy server.
        encodings = [self.tokenizer.encode(texts[0])] if len(texts) == 1 else self.tokenizer.encode_batch(texts)
        if self.serving.window_head is None:  # older formats: the tokenizer truncates
            return [e.ids for e in encodings]
        return [window_ids(e.ids, self.max_length, self.serving.window_head) for e in encodings]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """softmax(logits / temperature), shape [len(texts), len(labels)]; texts must be non-empty."""
        return self.score(texts).probabilities

    def predict(self, texts: list[str], *, teams: Mapping[str, TeamInfo], default_threshold: float) -> list[Prediction]:
        """Route each text (see Prediction for the reasons and their order). With a model that has
        the no-intent label, a text of several sentences held back whole (REREAD_REASONS) takes the
        answer of the sentences that carry a request alone, joined, when that routes.

        Triage threshold: the team's own, else this model's proposal, else the default.
        """
        threshold = default_threshold if self.proposed_threshold is None else self.proposed_threshold
        predictions = self._predict_whole(texts, teams, threshold)
        if self.serving.no_intent_label is None:  # a model that cannot tell context from a request
            return predictions
        pending = {}
        for index, (text, prediction) in enumerate(zip(texts, predictions)):
            if _rereadable(prediction, teams) and len(parts := self._sentences(text)) > 1:
                pending[index] = parts
        if pending:
            self._reread(predictions, pending, teams, threshold)
        return predictions

    def _sentences(self, text: str) -> list[str]:
        """The first MAX_SENTENCES sentences of the text as the model reads it (its message body)."""
        return sentences(message_body(text) if self.serving.message_body else text)[:MAX_SENTENCES]

    def _predict_whole(self, texts: list[str], teams: Mapping[str, TeamInfo], threshold: float) -> list[Prediction]:
        scored = self.score(texts)
        predictions = []
        for index, (text, row) in enumerate(zip(texts, scored.probabilities)):
            in_scope = None if scored.in_scope is None else float(scored.in_scope[index])
            predictions.append(self._decide(text, row, in_scope, teams, threshold))
        return predictions

    def _reread(self, predictions: list[Prediction], pending: dict[int, list[str]], teams, threshold: float) -> None:
        """Replace predictions[index] by the answer of its text's request sentences, where that routes.

        Every sentence is scored alone (one batch); those answered routed or low_confidence are the
        request. None of them, or all: the whole text's answer stands. One: its own answer. Several:
        the answer of their joined text (one more batch).
        """
        alone = iter(self._predict_whole([part for parts in pending.values() for part in parts], teams, threshold))
        joined: dict[int, str] = {}
        for index, parts in pending.items():
            request = [(part, p) for part in parts if (p := next(alone)).team is not None]
            if len(request) == 1:
                predictions[index] = _routed_or(request[0][1], predictions[index])
            elif 1 < len(request) < len(parts):
                joined[index] = " ".join(part for part, _ in request)
        if joined:
            for index, answer in zip(joined, self._predict_whole(list(joined.values()), teams, threshold)):
                predictions[index] = _routed_or(answer, predictions[index])

    def _decide(self, text: str, row: np.ndarray, in_scope: float | None, teams, model_threshold: float) -> Prediction:
        no_intent = self.serving.no_intent_label
        scores = team_scores(self.labels, row, no_intent, teams)
        slug = max(scores, key=scores.get)
        confidence, info = scores[slug], teams.get(slug)
        language, supported = language_check(text, self.serving.languages)
        threshold = model_threshold if info is None or info.triage_threshold is None else info.triage_threshold
        if not supported:
            reason = "unsupported_language"
        elif no_intent is not None and float(row[self.labels.index(no_intent)]) > confidence:
            reason, confidence = "no_intent", float(row[self.labels.index(no_intent)])
        elif in_scope is not None and in_scope < self.serving.ood.threshold:
            reason = "out_of_scope"
        elif confidence < threshold or info is None or not info.active:
            reason = "low_confidence"
        else:
            reason = "routed"
        routed = reason in ("routed", "low_confidence")
        return Prediction(
            team=slug if routed else None,
            team_name=(info.name if info is not None else slug) if routed else None,
            confidence=confidence,
            triage=reason not in ("routed", "no_intent"),
            reason=reason,
            language=language,
            scores=scores,
            model_version=self.version,
        )


def _rereadable(prediction: Prediction, teams: Mapping[str, TeamInfo]) -> bool:
    """Held back for a REREAD_REASONS reason, and not because its team is unknown or inactive."""
    info = teams.get(prediction.team) if prediction.team is not None else None
    return prediction.reason in REREAD_REASONS and (prediction.team is None or (info is not None and info.active))


def _routed_or(answer: Prediction, whole: Prediction) -> Prediction:
    return answer if answer.reason == "routed" else whole


def team_scores(
    labels: tuple[str, ...], row: np.ndarray, no_intent: str | None, teams: Mapping[str, TeamInfo]
) -> dict[str, float]:
    """Probability per team slug (reserved labels left out); a merged team's adds to its target's."""
    scores: dict[str, float] = {}
    for label, probability in zip(labels, row):
        if label == no_intent:
            continue
        info = teams.get(label)
        slug = info.routes_to if info is not None and info.routes_to else label
        scores[slug] = scores.get(slug, 0.0) + float(probability)
    return scores


def language_check(text: str, languages: dict | None, detect=None) -> tuple[str | None, bool]:
    """(language code or None, whether the model may answer): only a confident guess can refuse.

    detect(text) -> LanguageGuess | None; finetune.ml.language.detect_language unless given.
    """
    if not languages:
        return None, True
    guess = (detect or detect_language)(text)
    if guess is None or guess.confidence < float(languages.get("min_confidence", 0.0)):
        return None, True
    return guess.code, guess.code in languages["supported"]
