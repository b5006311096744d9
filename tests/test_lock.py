"""The lock files hold every top-level pin at its version, each package with a sha256 hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    return {_name(name): version for name, version in PIN.findall(path.read_text())}


def _locked(path: Path) -> dict[str, list[str]]:
    """Each locked package and the hashes listed under it."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    locked = {}
    for entry in entries:
        match = PIN.match(entry)
        if match:
            locked[_name(match[1])] = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
    return locked


@pytest.mark.parametrize(
    ("requirements", "lock"),
    [
        ("requirements.txt", "requirements.lock"),
        ("requirements-dev.txt", "requirements-dev.lock"),
    ],
)
def test_every_pin_is_locked_with_hashes(requirements, lock):
    """Each pin of the requirements (and the file it includes) is in the lock at that version; every
    locked package has a hash. A pin changed without running scripts/lock.sh fails here."""
    pins = _pins(ROOT / "requirements.txt") | _pins(ROOT / requirements)
    lock_path = ROOT / lock
    versions = _pins(lock_path)
    # The lock names torch's local version (2.13.0+cpu); the pin matches it as pip does.
    stale = {
        name: (version, versions.get(name))
        for name, version in pins.items()
        if versions.get(name, "").split("+")[0] != version
    }
    assert not stale, f"{lock} is stale (pin, locked): {stale}; run scripts/lock.sh"
    assert all(_locked(lock_path).values()), f"{lock} has a package without a hash"


def test_torch_is_the_cpu_build():
    """torch is locked as its CPU build, with only that wheel's hash."""
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^torch==[0-9.]+\+cpu \\$", lock, re.MULTILINE)
    assert not re.search(r"^nvidia-", lock, re.MULTILINE), "a CUDA dependency is locked"
