"""Artifact integrity and publication: sha256 checksums and an atomic rename into the store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ChecksumError

CHECKSUMS = "checksums"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() != CHECKSUMS
    )


def write_checksums(directory: Path) -> str:
    """Write `checksums` (sha256sum format) for every other file; return the sha256 of that file."""
    directory = Path(directory)
    lines = [f"{sha256_file(directory / rel)}  {rel}\n" for rel in _files(directory)]
    path = directory / CHECKSUMS
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    return sha256_file(path)


def verify_checksums(directory: Path) -> str:
    """Check every listed file (and that none is unlisted); return the checksums file's sha256."""
    directory = Path(directory)
    path = directory / CHECKSUMS
    if not path.is_file():
        raise ChecksumError(f"{directory} has no {CHECKSUMS} file; the artifact is incomplete.")
    listed = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    for rel, digest in listed.items():
        if not (directory / rel).is_file():
            raise ChecksumError(f"{directory}: {rel} is listed in {CHECKSUMS} but missing.")
        if sha256_file(directory / rel) != digest:
            raise ChecksumError(f"{directory}: {rel} differs from its recorded sha256.")
    extra = sorted(set(_files(directory)) - set(listed))
    if extra:
        raise ChecksumError(f"{directory}: files not in {CHECKSUMS}: {', '.join(extra)}.")
    return sha256_file(path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_dir: Path, store: Path, name: str) -> Path:
    """Atomically rename a fully written temp dir (inside `store`) to `store/name`.

    rename(2) within one filesystem is atomic: readers see either no version or a complete one.
    """
    tmp_dir, store = Path(tmp_dir).resolve(), Path(store).resolve()
    if tmp_dir.parent != store:
        raise ValueError(f"{tmp_dir} must be created directly inside the store {store} to rename atomically")
    verify_checksums(tmp_dir)
    target = store / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; model versions are never overwritten")
    os.rename(tmp_dir, target)
    _fsync_dir(store)
    return target
