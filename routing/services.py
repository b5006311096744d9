"""Writes to model versions: promote, roll back, shadow.

Every path that lets a version serve verifies its artifact first.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chatbot.core.errors import ConflictError
from routing.loaded_model import ArtifactError, artifact_verify
from routing.models import ModelVersion

logger = logging.getLogger(__name__)


def _activate(*, version: ModelVersion) -> None:
    # Retire the old active row first: the partial unique index allows one active row at a time.
    ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exclude(pk=version.pk).update(
        state=ModelVersion.State.RETIRED
    )
    version.state = ModelVersion.State.ACTIVE
    version.shadow_since = None


@transaction.atomic
def model_version_promote(*, version: ModelVersion, user: AbstractBaseUser | None) -> ModelVersion:
    """Make ``version`` the one every router serves; the previous active version is retired.

    Refuses (ArtifactError, 409) a version whose files do not verify, the active one included
    (its files may have changed since). Promoting an intact active version again is a no-op.
    """
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    artifact_verify(version=version)
    if version.state == ModelVersion.State.ACTIVE:
        return version
    _activate(version=version)
    version.promoted_at = timezone.now()
    version.promoted_by = user if user is not None and user.is_authenticated else None
    version.save(update_fields=["state", "shadow_since", "promoted_at", "promoted_by"])
    logger.info(
        "model version %s promoted by %s",
        version.pk,
        version.promoted_by or "the promotion gate",
        extra={"model_version": str(version.pk)},
    )
    return version


@transaction.atomic
def model_version_rollback(*, user: AbstractBaseUser | None) -> ModelVersion:
    """Re-activate the most recently promoted version before the active one that still verifies.

    Its original promoted_at is kept, so promotion times stay the history: rolling back twice
    goes two promotions back rather than toggling between two versions.
    """
    active = ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).first()
    earlier = ModelVersion.objects.filter(promoted_at__isnull=False).order_by("-promoted_at", "-pk")
    if active is not None:
        earlier = earlier.exclude(pk=active.pk)
        if active.promoted_at is not None:
            earlier = earlier.filter(promoted_at__lt=active.promoted_at)
    refused = []
    for candidate in earlier:
        try:
            artifact_verify(version=candidate)
        except ArtifactError as exc:
            refused.append(exc.message)
            continue
        _activate(version=candidate)
        candidate.save(update_fields=["state", "shadow_since"])
        logger.info(
            "rolled back to model version %s by %s", candidate.pk, user, extra={"model_version": str(candidate.pk)}
        )
        return candidate
    reason = f" ({'; '.join(refused)})" if refused else ""
    raise ConflictError(
        f"No earlier promoted model version with intact files to roll back to{reason}.",
        code="nothing_to_roll_back",
    )


@transaction.atomic
def model_version_set_shadow(*, version: ModelVersion, user: AbstractBaseUser | None) -> ModelVersion:
    """Score live traffic with ``version`` beside the active one; a previous shadow becomes a candidate."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.state == ModelVersion.State.ACTIVE:
        raise ConflictError(f"Model version {version.pk} is active; shadow a candidate instead.")
    if version.state == ModelVersion.State.SHADOW:
        return version
    artifact_verify(version=version)
    model_version_clear_shadow()
    version.state = ModelVersion.State.SHADOW
    version.shadow_since = timezone.now()
    version.save(update_fields=["state", "shadow_since"])
    logger.info("model version %s set as shadow by %s", version.pk, user, extra={"model_version": str(version.pk)})
    return version


@transaction.atomic
def model_version_clear_shadow() -> ModelVersion | None:
    """Return the shadow version (if any) to candidate; returns it."""
    shadow = ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.SHADOW).first()
    if shadow is None:
        return None
    shadow.state = ModelVersion.State.CANDIDATE
    shadow.shadow_since = None
    shadow.save(update_fields=["state", "shadow_since"])
    return shadow
