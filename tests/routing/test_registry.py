"""Registering a finished run's artifact as a model version, and the promotion gate."""

from __future__ import annotations

import json

import pytest

from finetune.ml.artifacts import verify_checksums
from finetune.ml.pipeline import PipelineResult
from finetune.models import TrainingRun
from routing.models import ModelVersion
from routing.registry import model_version_register, promotion_gate
from tests.ml_fixtures import make_tiny_artifact

LABELS = ["accounts", "billing", "bugs"]


@pytest.fixture
def model_store(settings, tmp_path):
    path = tmp_path / "store"
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MODEL_STORE": str(path)}
    return path


def pipeline_result(store, name: str = ".tmp-run-1-abcd") -> PipelineResult:
    """A complete, checksummed artifact in a temp dir inside the store, as run_pipeline leaves it."""
    directory = make_tiny_artifact(store, LABELS, name=name)
    metrics = json.loads((directory / "metrics.json").read_text())
    return PipelineResult(
        artifact_dir=directory,
        labels=LABELS,
        metrics=metrics,
        test_accuracy=metrics["int8"]["accuracy"],
        temperature=metrics["calibration"]["temperature"],
        proposed_threshold=metrics["calibration"]["triage_threshold"],
        card=(directory / "card.md").read_text(),
    )


def version_with(accuracy: float, n: int, state=ModelVersion.State.CANDIDATE) -> ModelVersion:
    count = ModelVersion.objects.count()
    return ModelVersion.objects.create(
        artifact_dir=f"x{count}", state=state, test_accuracy=accuracy, metrics={"int8": {"accuracy": accuracy, "n": n}}
    )


@pytest.mark.django_db
def test_register_publishes_under_the_version_number(model_store):
    """The temp dir is renamed to <store>/<pk>; the row records its checksum and metrics."""
    result = pipeline_result(model_store)
    version = model_version_register(run=TrainingRun.objects.create(), result=result)
    assert version.artifact_dir == str(version.pk) and version.state == ModelVersion.State.CANDIDATE
    assert verify_checksums(model_store / str(version.pk)) == version.sha256
    assert not result.artifact_dir.exists()
    assert version.labels == LABELS and version.test_accuracy == result.test_accuracy
    assert version.card.startswith("# ") and version.proposed_triage_threshold == result.proposed_threshold


@pytest.mark.django_db
def test_register_failure_leaves_no_row(model_store, monkeypatch):
    """If the rename fails, the half-made row is deleted and no version directory appears."""
    result = pipeline_result(model_store)

    def refuse(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr("routing.registry.publish", refuse)
    with pytest.raises(OSError):
        model_version_register(run=TrainingRun.objects.create(), result=result)
    assert not ModelVersion.objects.exists()
    assert sorted(p.name for p in model_store.iterdir()) == [result.artifact_dir.name]


@pytest.mark.django_db
def test_register_refuses_a_tampered_artifact(model_store):
    """A file changed after its checksum was written is never registered."""
    from finetune.ml.errors import ChecksumError

    result = pipeline_result(model_store)
    (result.artifact_dir / "labels.json").write_text('["tampered"]')
    with pytest.raises(ChecksumError):
        model_version_register(run=TrainingRun.objects.create(), result=result)
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_gate_promotes_the_first_version():
    """With no active version the candidate is always promoted."""
    promote, reason = promotion_gate(candidate=version_with(0.2, 10))
    assert promote and "no version was active" in reason


@pytest.mark.django_db
def test_gate_compares_with_the_active_accuracy_and_margin(settings):
    """Promote when candidate >= active - margin; the reason notes differing test set sizes."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "PROMOTION_MARGIN": 0.05}
    version_with(0.90, 30, state=ModelVersion.State.ACTIVE)
    promote, reason = promotion_gate(candidate=version_with(0.86, 36))
    assert promote and "test sets differ: 36 vs 30" in reason
    promote, reason = promotion_gate(candidate=version_with(0.84, 30))
    assert not promote and "stays a candidate" in reason and "differ" not in reason


@pytest.mark.django_db
def test_gate_respects_auto_promote_off(settings):
    """AUTO_PROMOTE off: even a better candidate waits for a human."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "AUTO_PROMOTE": False}
    version_with(0.5, 30, state=ModelVersion.State.ACTIVE)
    promote, reason = promotion_gate(candidate=version_with(0.99, 30))
    assert not promote and "AUTO_PROMOTE is off" in reason
