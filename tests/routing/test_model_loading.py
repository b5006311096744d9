"""ModelLoader: the one place that opens model versions and remembers the ones it refused."""

from __future__ import annotations

import logging
import threading

import pytest

from finetune.ml.artifacts import write_checksums
from routing.loaded_model import LoadedModel
from routing.model_loading import ModelLoader

pytestmark = pytest.mark.django_db


@pytest.fixture
def counted_loads(monkeypatch) -> list[int]:
    """Every LoadedModel.from_version call, by version id."""
    calls: list[int] = []
    original = LoadedModel.from_version.__func__
    monkeypatch.setattr(LoadedModel, "from_version", classmethod(lambda cls, v: calls.append(v.pk) or original(cls, v)))
    return calls


def test_a_verified_version_is_opened(install_version):
    """A version whose files verify loads as that version, and nothing is recorded as refused."""
    version = install_version("v1")
    model = ModelLoader("test: refusing").load(version)
    assert (model.version, model.sha256) == (str(version.pk), version.sha256)


def test_refusal_is_remembered_with_its_reason_and_logged_once(install_version, store, counted_loads, caplog):
    """A tampered version is verified once: later loads return None without opening files again."""
    version = install_version("v1")
    (store / version.artifact_dir / "card.md").write_text("tampered\n")
    loader = ModelLoader("test: refusing")
    caplog.set_level(logging.ERROR, logger="routing.model_loading")
    assert [loader.load(version) for _ in range(3)] == [None] * 3
    assert counted_loads == [version.pk]
    assert "card.md" in loader.refusal((version.pk, version.sha256))
    refusals = [r.getMessage() for r in caplog.records if r.name == "routing.model_loading"]
    assert len(refusals) == 1 and refusals[0].startswith(f"test: refusing model version {version.pk}: ")


def test_a_new_sha256_for_the_same_version_is_retried(install_version, store, counted_loads):
    """Files fixed and re-registered under a new sha256 are tried again and served."""
    version = install_version("v1")
    directory = store / version.artifact_dir
    (directory / "card.md").write_text("edited after registration\n")
    loader = ModelLoader("test: refusing")
    assert loader.load(version) is None
    old_key = (version.pk, version.sha256)
    version.sha256 = write_checksums(directory)
    version.save()
    model = loader.load(version)
    assert counted_loads == [version.pk, version.pk] and model.sha256 == version.sha256
    assert loader.refusal(old_key) is not None and loader.refusal((version.pk, version.sha256)) is None


def test_concurrent_loads_of_a_broken_version_verify_it_once(install_version, store, counted_loads):
    """Threads asking for the same refused version at once do not each re-verify it."""
    version = install_version("v1")
    (store / version.artifact_dir / "card.md").write_text("tampered\n")
    loader = ModelLoader("test: refusing")
    threads = [threading.Thread(target=loader.load, args=(version,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted_loads == [version.pk]


def test_clear_forgets_refusals(install_version, store, counted_loads):
    """After clear() a refused version is verified again (the tests' and an operator's reset)."""
    version = install_version("v1")
    (store / version.artifact_dir / "card.md").write_text("tampered\n")
    loader = ModelLoader("test: refusing")
    loader.load(version)
    loader.clear()
    assert loader.load(version) is None and counted_loads == [version.pk, version.pk]
