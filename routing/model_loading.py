"""Loading model versions for serving, remembering the ones that were refused.

The router and the shadow scorer both open model versions on a live request path; a version
whose files fail verification must be checked (and logged) once, not on every request.
A refusal is keyed by (id, sha256): re-registering fixed files under a new sha256 retries.
"""

from __future__ import annotations

import logging
import threading

from routing.loaded_model import ArtifactError, LoadedModel, artifact_files_verify, artifact_fingerprint
from routing.models import ModelVersion

logger = logging.getLogger(__name__)

VersionKey = tuple[int, str]


class ModelLoader:
    """Opens ModelVersions via LoadedModel.from_version; a refused (id, sha256) is not retried."""

    def __init__(self, refusal_log: str) -> None:
        # e.g. "router: refusing": the log line reads "<refusal_log> model version 7: <reason>".
        self._refusal_log = refusal_log
        self._lock = threading.Lock()
        self._refused: dict[VersionKey, str] = {}

    def load(self, version: ModelVersion) -> LoadedModel | None:
        """The opened model, or None when this (id, sha256) is (or was before) refused."""
        key = (version.pk, version.sha256)
        with self._lock:
            if key in self._refused:
                return None
            try:
                return LoadedModel.from_version(version)
            except ArtifactError as exc:
                self._refused[key] = exc.message
                logger.error("%s model version %s: %s", self._refusal_log, version.pk, exc.message)
                return None

    def refusal(self, key: VersionKey) -> str | None:
        """Why this (id, sha256) was refused, or None if it was not."""
        with self._lock:
            return self._refused.get(key)

    def clear(self) -> None:
        with self._lock:
            self._refused.clear()


class ServedFilesCheck:
    """Whether the files of the model being served still verify on disk.

    A process serves from memory, so a corrupted or deleted artifact would go unnoticed until the
    next start refuses it. Each check stats the files; the checksums are re-read only when those changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[tuple, str | None] | None = None

    def problem(self, model: LoadedModel) -> str | None:
        """Why ``model``'s files no longer verify, or None while they do."""
        if model.directory is None:
            return None
        fingerprint = artifact_fingerprint(model.directory)
        if fingerprint is not None and fingerprint == model.fingerprint:
            return None
        key = (model.version, model.sha256, fingerprint)
        with self._lock:
            if self._last is None or self._last[0] != key:
                self._last = (key, self._verify(model))
            return self._last[1]

    @staticmethod
    def _verify(model: LoadedModel) -> str | None:
        try:
            artifact_files_verify(directory=model.directory, version=model.version, sha256=model.sha256)
        except ArtifactError as exc:
            logger.error("router: the files of model version %s changed on disk: %s", model.version, exc.message)
            return (
                f"{exc.message}. This process still serves it from memory, but no new process can load it: "
                "restore its files, or promote or roll back to a version whose files verify."
            )
        return None
