"""The served artifact's files on disk: health notices when they change, promotion checks them,
and no answer shows the model store's absolute path."""

from __future__ import annotations

import shutil

import pytest
from django.db import DatabaseError

from chatbot.core.errors import NoModelError
from routing import selectors

pytestmark = pytest.mark.django_db


def test_health_is_degraded_when_the_served_files_are_corrupted_then_deleted(
    client, router, teams, install_version, store
):
    """The version serving from memory: health is ok (also once a file is rewritten with the same bytes),
    degraded once its model.onnx changes on disk, still degraded once its directory is gone; the
    problem names the file, not the store's path."""
    version = install_version("v1", state="active")
    assert router.predict(["card"])[0].model_version == str(version.pk)
    labels = store / version.artifact_dir / "labels.json"
    labels.write_bytes(labels.read_bytes())
    assert client.get("/api/v1/health").json()["status"] == "ok"
    with open(store / version.artifact_dir / "model.onnx", "ab") as f:
        f.write(b"corrupted")
    corrupted = client.get("/api/v1/health").json()
    assert corrupted["status"] == "degraded" and corrupted["serving_version"] == str(version.pk)
    assert "model.onnx" in corrupted["problem"] and str(store) not in corrupted["problem"]
    shutil.rmtree(store / version.artifact_dir)
    deleted = client.get("/api/v1/health").json()
    assert deleted["status"] == "degraded" and "missing" in deleted["problem"]
    assert str(store) not in deleted["problem"] and "MODEL_STORE" in deleted["problem"]


def test_refused_active_version_shows_no_store_path(client, router, teams, install_version, store):
    """An active version that cannot load: health's problem and the 503 no_model message name MODEL_STORE
    and the missing file, never the store's absolute path."""
    version = install_version("v1", state="active")
    (store / version.artifact_dir / "tokenizer.json").unlink()
    problem = client.get("/api/v1/health").json()["problem"]
    with pytest.raises(NoModelError) as error:
        router.predict(["card"])
    for text in (problem, error.value.message):
        assert "tokenizer.json" in text and "MODEL_STORE" in text and str(store) not in text


def test_health_503_does_not_show_the_database_error(client, router, monkeypatch):
    """With the database unreachable health answers 503 unavailable without the driver's message (host, file)."""

    def unreachable():
        raise DatabaseError('connection to server at "10.0.0.5", port 5432 failed: /srv/secret')

    monkeypatch.setattr(selectors, "router_health", unreachable)
    response = client.get("/api/v1/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
    assert "10.0.0.5" not in response.content.decode() and "/srv/secret" not in response.content.decode()


def test_promoting_the_active_version_checks_its_files(staff_api, router, teams, install_version, store):
    """Promoting the active version again verifies it: corrupt files are 409 artifact_invalid, not 200."""
    version = install_version("v1", state="active")
    assert staff_api.post(f"/api/v1/models/{version.pk}/promote").status_code == 200
    with open(store / version.artifact_dir / "model.onnx", "ab") as f:
        f.write(b"corrupted")
    response = staff_api.post(f"/api/v1/models/{version.pk}/promote")
    assert response.status_code == 409 and response.json()["code"] == "artifact_invalid"
    assert "model.onnx" in response.json()["detail"] and str(store) not in response.json()["detail"]
