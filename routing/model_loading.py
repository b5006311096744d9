"""Loading model versions for serving, remembering the ones that were refused.

The router and the shadow scorer both open model versions on a live request path; a version
whose files fail verification must be checked (and logged) once, not on every request.
A refusal is keyed by (id, sha256): re-registering fixed files under a new sha256 retries.
"""

from __future__ import annotations

import logging
import threading

from routing.loaded_model import ArtifactError, LoadedModel
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
