"""Artifact checksums and atomic publication."""

from __future__ import annotations

import hashlib

import pytest

from finetune.ml.artifacts import publish, verify_checksums, write_checksums
from finetune.ml.errors import ChecksumError


def _artifact(directory):
    directory.mkdir()
    (directory / "model.onnx").write_bytes(b"\x00model")
    (directory / "sub").mkdir()
    (directory / "sub" / "labels.json").write_text('["a", "b"]')
    return directory


def test_checksums_are_in_sha256sum_format(tmp_path):
    """One '<hex>  <relpath>' line per file except itself; the return value hashes that file."""
    directory = _artifact(tmp_path / "v1")
    digest = write_checksums(directory)
    lines = (directory / "checksums").read_text().splitlines()
    model_hash = hashlib.sha256(b"\x00model").hexdigest()
    labels_hash = hashlib.sha256(b'["a", "b"]').hexdigest()
    assert lines == [f"{model_hash}  model.onnx", f"{labels_hash}  sub/labels.json"]
    assert digest == hashlib.sha256((directory / "checksums").read_bytes()).hexdigest()
    assert verify_checksums(directory) == digest


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.onnx").write_bytes(b"tampered"), "model.onnx differs"),
        (lambda d: (d / "sub" / "labels.json").unlink(), "missing"),
        (lambda d: (d / "extra.txt").write_text("x"), "extra.txt"),
        (lambda d: (d / "checksums").unlink(), "no checksums"),
    ],
)
def test_verify_detects_damage(tmp_path, damage, message):
    """A changed, missing or unlisted file, or no checksums file, raises ChecksumError."""
    directory = _artifact(tmp_path / "v1")
    write_checksums(directory)
    damage(directory)
    with pytest.raises(ChecksumError, match=message):
        verify_checksums(directory)


def test_publish_renames_into_place(tmp_path):
    """A complete temp dir inside the store becomes store/name and the temp dir is gone."""
    store = tmp_path / "store"
    store.mkdir()
    tmp = _artifact(store / ".tmp-1")
    write_checksums(tmp)
    target = publish(tmp, store, "1")
    assert target == (store / "1").resolve()
    assert not tmp.exists()
    verify_checksums(target)


def test_publish_refuses_incomplete_overwrites_and_outside_dirs(tmp_path):
    """No checksums, an existing version, or a temp dir outside the store are all refused."""
    store = tmp_path / "store"
    store.mkdir()
    incomplete = _artifact(store / ".tmp-a")
    with pytest.raises(ChecksumError):
        publish(incomplete, store, "1")
    write_checksums(incomplete)
    (store / "1").mkdir()
    with pytest.raises(FileExistsError):
        publish(incomplete, store, "1")
    outside = _artifact(tmp_path / "elsewhere")
    write_checksums(outside)
    with pytest.raises(ValueError, match="inside the store"):
        publish(outside, store, "2")
    assert not (store / "2").exists()
