"""Model versions from finished runs: publish the artifact, record it, and decide on promotion."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.utils.crypto import get_random_string

from chatbot.core.conf import model_store, setting
from finetune.ml.artifacts import publish, verify_checksums
from routing.models import ModelVersion


def model_version_register(*, run, result) -> ModelVersion:
    """Publish ``result.artifact_dir`` as ``<store>/<pk>`` and record it as a candidate.

    The row comes first because its pk names the directory; if publishing fails the row is
    deleted again, so a version row always has a complete, checksummed directory behind it.
    """
    store = model_store()
    sha256 = verify_checksums(Path(result.artifact_dir))
    version = ModelVersion.objects.create(
        artifact_dir=f".pending-run-{run.pk}-{get_random_string(8)}",
        sha256=sha256,
        labels=list(result.labels),
        metrics=result.metrics,
        card=result.card,
        test_accuracy=result.test_accuracy,
        temperature=result.temperature,
        proposed_triage_threshold=result.proposed_threshold,
    )
    published = None
    try:
        published = publish(Path(result.artifact_dir), store, str(version.pk))
        version.artifact_dir = str(version.pk)
        version.save(update_fields=["artifact_dir"])
    except BaseException:
        version.delete()
        if published is not None:
            shutil.rmtree(published, ignore_errors=True)
        raise
    return version


def _test_size(version: ModelVersion) -> int | None:
    return (version.metrics or {}).get("int8", {}).get("n")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def promotion_gate(*, candidate: ModelVersion) -> tuple[bool, str]:
    """Whether a fresh candidate should replace the active version, and why, in one sentence.

    The test split is frozen per ticket, so the candidate's test set contains the active one's
    (plus tickets labelled since): comparing the stored int8 test accuracies is fair enough,
    and the reason says when the sets differ in size.
    """
    active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exclude(pk=candidate.pk).first()
    if active is None:
        return True, f"v{candidate.pk} is promoted: no version was active."
    if not setting("AUTO_PROMOTE"):
        return False, (
            f"v{candidate.pk} stays a candidate: AUTO_PROMOTE is off. Compare it with v{active.pk} "
            "on its evaluation page and promote it in the admin."
        )
    evaluated_on = (candidate.metrics or {}).get("evaluated_on", "test")
    if evaluated_on != "test":
        return False, (
            f"v{candidate.pk} stays a candidate: it was scored on the {evaluated_on} split (no test tickets), "
            "which is no fair comparison with the active version."
        )
    if candidate.test_accuracy is None or active.test_accuracy is None:
        return False, f"v{candidate.pk} stays a candidate: a test accuracy is missing, so there is no fair comparison."
    margin = setting("PROMOTION_MARGIN")
    bar = active.test_accuracy - margin
    new_n, old_n = _test_size(candidate), _test_size(active)
    note = f" (test sets differ: {new_n} vs {old_n} tickets)" if new_n != old_n else ""
    comparison = (
        f"int8 test accuracy {_pct(candidate.test_accuracy)} vs v{active.pk}'s "
        f"{_pct(active.test_accuracy)} minus margin {_pct(margin)}{note}"
    )
    if candidate.test_accuracy >= bar:
        return True, f"v{candidate.pk} is promoted: {comparison}."
    return False, (
        f"v{candidate.pk} stays a candidate: {comparison}. Label more tickets, or promote it by hand "
        "after reading its evaluation."
    )
