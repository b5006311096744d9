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

from chatbot.conf import model_store, setting
from chatbot.errors import SwitchboardError
from finetune.ml.artifacts import verify_checksums
from finetune.ml.errors import ChecksumError
from routing.models import ModelVersion

REQUIRED_FILES = ("model.onnx", "tokenizer.json", "labels.json", "serving.json", "checksums")


class ArtifactError(SwitchboardError):
    """A model version's files are missing, corrupt or inconsistent: it must not serve."""

    code = "artifact_invalid"
    http_status = 409


@dataclass(frozen=True)
class Prediction:
    team: str | None  # best team slug; None when reason is no_intent, out_of_scope or unsupported_language
    team_name: str | None
    confidence: float  # calibrated probability of the best team (of no-intent when reason is no_intent)
    triage: bool  # True for low_confidence, out_of_scope, unsupported_language; False for routed, no_intent
    reason: str  # "routed" | "no_intent" | "out_of_scope" | "unsupported_language" | "low_confidence"
    language: str | None  # ISO 639-1 code when identified confidently, else None
    scores: dict[str, float]  # per team slug, reserved labels excluded
    model_version: str


@dataclass(frozen=True)
class TeamInfo:
    name: str
    # The team's own triage threshold; None defers to the model's proposal, then the global value.
    triage_threshold: float | None
    # An inactive team has no inbox: a message predicted for it always goes to triage.
    active: bool = True


def artifact_dir(version: ModelVersion) -> Path:
    return model_store() / version.artifact_dir


def artifact_verify(*, version: ModelVersion) -> Path:
    """Check every file against ``checksums`` and ``checksums`` against ModelVersion.sha256."""
    directory = artifact_dir(version)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ArtifactError(f"model version {version.pk}: missing {', '.join(missing)} in {directory}")
    try:
        actual = verify_checksums(directory)
    except ChecksumError as exc:
        raise ArtifactError(f"model version {version.pk}: checksum mismatch: {exc}") from exc
    if actual != version.sha256:
        raise ArtifactError(
            f"model version {version.pk}: checksum mismatch for checksums "
            f"(file {actual[:12]}..., registered {version.sha256[:12]}...)"
        )
    return directory


def _intra_op_threads() -> int:
    # Optional key: one thread per session measured fastest per request with one process per core.
    overrides = getattr(settings, "SWITCHBOARD", {})
    return int(overrides.get("ROUTER_INTRA_OP_THREADS", 1))


def _open_tokenizer(directory: Path, max_length: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    pad_token = "[PAD]"
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        pad_token = json.loads(config_path.read_text(encoding="utf-8")).get("pad_token") or pad_token
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ArtifactError(f"{directory}: tokenizer has no pad token {pad_token!r}")
    tokenizer.enable_truncation(max_length=max_length)
    # No fixed length: pad to the longest text in the batch.
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def _read_serving(directory: Path) -> tuple[dict, list[str]]:
    serving = json.loads((directory / "serving.json").read_text(encoding="utf-8"))
    labels = json.loads((directory / "labels.json").read_text(encoding="utf-8"))
    if serving.get("format") != 1:
        raise ArtifactError(f"{directory}: serving.json format {serving.get('format')!r}, expected 1")
    if serving.get("labels", labels) != labels or labels != sorted(labels) or not labels:
        raise ArtifactError(f"{directory}: labels.json and serving.json labels disagree or are unsorted")
    return serving, labels


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

    @classmethod
    def from_version(cls, version: ModelVersion, *, threads: int | None = None) -> LoadedModel:
        directory = artifact_verify(version=version)
        try:
            serving, labels = _read_serving(directory)
            max_length = min(int(serving.get("max_length", 64)), int(setting("MAX_TOKENS")))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or _intra_op_threads()
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = _open_tokenizer(directory, max_length)
        except (ValueError, KeyError, OSError, RuntimeError) as exc:
            raise ArtifactError(f"model version {version.pk}: cannot open artifact: {exc}") from exc
        return cls(
            version=str(version.pk),
            sha256=version.sha256,
            labels=tuple(labels),
            temperature=float(serving.get("temperature") or 1.0),
            max_length=max_length,
            proposed_threshold=version.proposed_triage_threshold,
            session=session,
            tokenizer=tokenizer,
        )

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """softmax(logits / temperature), shape [len(texts), len(labels)]; texts must be non-empty."""
        # One text (every chat message, most API calls): encode() skips encode_batch's thread pool
        # hand-off, which cost more than the tokenizing itself inside a busy server.
        encodings = [self.tokenizer.encode(texts[0])] if len(texts) == 1 else self.tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        logits = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        scaled = logits.astype(np.float64) / self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(
        self, texts: list[str], *, teams: Mapping[str, TeamInfo], default_threshold: float
    ) -> list[Prediction]:
        """Route each text. Triage threshold: the team's own, else this model's proposal, else the default."""
        model_threshold = default_threshold if self.proposed_threshold is None else self.proposed_threshold
        predictions = []
        for row in self.probabilities(texts):
            best = int(row.argmax())
            slug = self.labels[best]
            info = teams.get(slug)
            threshold = model_threshold if info is None or info.triage_threshold is None else info.triage_threshold
            confidence = float(row[best])
            triage = confidence < threshold or info is None or not info.active
            predictions.append(
                Prediction(
                    team=slug,
                    team_name=info.name if info is not None else slug,
                    confidence=confidence,
                    triage=triage,
                    reason="low_confidence" if triage else "routed",
                    language=None,
                    scores={label: float(p) for label, p in zip(self.labels, row)},
                    model_version=self.version,
                )
            )
        return predictions
