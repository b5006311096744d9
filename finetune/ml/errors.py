"""The pipeline's error types: every failure a caller should show a user derives from PipelineError."""

from __future__ import annotations


class PipelineError(Exception):
    """A training run could not produce a model; the message says why and what to do."""


class NotEnoughDataError(PipelineError):
    """Some team has fewer labelled tickets than the configured minimum."""


class ParityError(PipelineError):
    """The int8 ONNX model disagrees with the torch student too often to be published."""


class Cancelled(PipelineError):
    """The caller asked the run to stop (should_cancel() returned True)."""


class ChecksumError(PipelineError):
    """An artifact file is missing or differs from its recorded sha256."""


class ConfigError(PipelineError, ValueError):
    """The training configuration is invalid; the message names the key and allowed values."""


class ArtifactFormatError(PipelineError):
    """serving.json (or an array next to it) is unreadable, inconsistent, or of an unknown format."""
