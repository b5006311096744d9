"""Fixtures for the router and API tests: real pipeline artifacts in a per-test model store.

The artifacts come from tests.ml_fixtures.make_tiny_artifact: the training pipeline run on a
tiny random BERT, so the router serves exactly what the pipeline ships (mean-pooled
classifier, int8 ONNX, calibrated serving.json), built once per label set per session.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from django.core.cache import cache

from routing import router as router_module
from routing.models import ModelVersion
from tests.ml_fixtures import make_tiny_artifact

# Two label sets, so every prediction shows which version answered it.
LABELS_V1 = ["accounts", "billing", "bugs"]
LABELS_V2 = ["accounts", "billing"]


@pytest.fixture(scope="session")
def artifact_sources(tmp_path_factory) -> dict[str, Path]:
    """Two pipeline-built artifacts: v1 (3 labels) and v2 (2 labels)."""
    root = tmp_path_factory.mktemp("artifacts")
    return {
        "v1": make_tiny_artifact(root, LABELS_V1, name="v1"),
        "v2": make_tiny_artifact(root, LABELS_V2, name="v2"),
    }


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def store(settings, tmp_path) -> Path:
    """An empty model store; the router re-checks the active version on every call."""
    path = tmp_path / "store"
    path.mkdir()
    settings.SWITCHBOARD = {"MODEL_STORE": str(path), "ROUTER_RELOAD_SECONDS": 0, "TRIAGE_THRESHOLD": 0.5}
    return path


@pytest.fixture
def install_version(store, artifact_sources):
    """Copy a built artifact into the store and register it: install_version("v1", state="active")."""
    counter = iter(range(1, 1000))

    def install(source: str, *, state: str = ModelVersion.State.CANDIDATE, **fields) -> ModelVersion:
        name = f"{source}-{next(counter)}"
        target = store / name
        shutil.copytree(artifact_sources[source], target)
        sha = hashlib.sha256((target / "checksums").read_bytes()).hexdigest()
        labels = json.loads((target / "labels.json").read_text())
        fields = {"sha256": sha, "labels": labels, **fields}
        return ModelVersion.objects.create(artifact_dir=name, state=state, **fields)

    return install


@pytest.fixture
def router(monkeypatch) -> router_module.Router:
    """A fresh per-test Router installed as this process's get_router()."""
    fresh = router_module.Router()
    monkeypatch.setattr(router_module, "_ROUTER", fresh)
    return fresh


def _client_for(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(plain_user):
    """An APIClient authenticated by a (non-staff) user's token."""
    return _client_for(plain_user)


@pytest.fixture
def staff_api(staff_user):
    """An APIClient authenticated by a staff user's token."""
    return _client_for(staff_user)


@pytest.fixture
def ingest_api(plain_user):
    """An APIClient for a non-staff user given the ticket-ingest permission (an integration)."""
    from django.contrib.auth.models import Permission

    plain_user.user_permissions.add(Permission.objects.get(content_type__app_label="finetune", codename="add_ticket"))
    return _client_for(plain_user)
