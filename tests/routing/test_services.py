"""Model version services: promote, roll back, shadow."""

from __future__ import annotations

import pytest

from chatbot.core.errors import ConflictError
from routing.loaded_model import ArtifactError
from routing.models import ModelVersion
from routing.services import (
    model_version_clear_shadow,
    model_version_promote,
    model_version_rollback,
    model_version_set_shadow,
)

pytestmark = pytest.mark.django_db


def _states() -> dict[int, str]:
    return dict(ModelVersion.objects.values_list("pk", "state"))


def test_promote_retires_the_previous_active(install_version, staff_user):
    """Promoting v2 makes it active (with who and when) and retires v1."""
    v1 = install_version("v1", state="active")
    v2 = install_version("v2")
    promoted = model_version_promote(version=v2, user=staff_user)
    assert _states() == {v1.pk: "retired", v2.pk: "active"}
    assert promoted.promoted_by == staff_user and promoted.promoted_at is not None


def test_promote_refuses_a_version_whose_files_do_not_verify(install_version, store, staff_user):
    """A tampered artifact is refused with artifact_invalid and nothing changes."""
    v1 = install_version("v1", state="active")
    v2 = install_version("v2")
    (store / v2.artifact_dir / "serving.json").write_text("{}")
    with pytest.raises(ArtifactError) as error:
        model_version_promote(version=v2, user=staff_user)
    assert error.value.code == "artifact_invalid" and "serving.json" in error.value.message
    assert _states() == {v1.pk: "active", v2.pk: "candidate"}


def test_promote_a_shadow_clears_its_shadow_state(install_version, staff_user):
    """The shadow version can be promoted; it stops being the shadow."""
    install_version("v1", state="active")
    v2 = install_version("v2")
    model_version_set_shadow(version=v2, user=staff_user)
    promoted = model_version_promote(version=v2, user=staff_user)
    assert promoted.state == "active" and promoted.shadow_since is None
    assert not ModelVersion.objects.filter(state="shadow").exists()


def test_rollback_walks_back_through_promotions(install_version, staff_user):
    """Rolling back twice after three promotions reaches the first version, not a toggle."""
    versions = [install_version("v1"), install_version("v2"), install_version("v1")]
    for version in versions:
        model_version_promote(version=version, user=staff_user)
    assert model_version_rollback(user=staff_user).pk == versions[1].pk
    assert model_version_rollback(user=staff_user).pk == versions[0].pk
    assert _states() == {versions[0].pk: "active", versions[1].pk: "retired", versions[2].pk: "retired"}


def test_rollback_skips_versions_whose_files_are_gone(install_version, store, staff_user):
    """An earlier version with a missing model.onnx is passed over for the one before it."""
    versions = [install_version("v1"), install_version("v2"), install_version("v1")]
    for version in versions:
        model_version_promote(version=version, user=staff_user)
    (store / versions[1].artifact_dir / "model.onnx").unlink()
    assert model_version_rollback(user=staff_user).pk == versions[0].pk


def test_rollback_without_an_earlier_version_conflicts(install_version, staff_user):
    """With only one version ever promoted there is nothing to roll back to (409)."""
    model_version_promote(version=install_version("v1"), user=staff_user)
    with pytest.raises(ConflictError) as error:
        model_version_rollback(user=staff_user)
    assert error.value.code == "nothing_to_roll_back" and error.value.http_status == 409


def test_set_shadow_replaces_the_previous_shadow(install_version, staff_user):
    """A new shadow sends the old one back to candidate; clear_shadow leaves none."""
    install_version("v1", state="active")
    first, second = install_version("v2"), install_version("v2")
    model_version_set_shadow(version=first, user=staff_user)
    model_version_set_shadow(version=second, user=staff_user)
    assert _states()[first.pk] == "candidate" and _states()[second.pk] == "shadow"
    assert model_version_clear_shadow().pk == second.pk
    assert not ModelVersion.objects.filter(state="shadow").exists()


def test_active_version_cannot_be_the_shadow(install_version, staff_user):
    """Shadowing the active version is a conflict."""
    active = install_version("v1", state="active")
    with pytest.raises(ConflictError):
        model_version_set_shadow(version=active, user=staff_user)
