#!/usr/bin/env bash
# Create .venv in the repo root (if missing) and install the locked requirements: every
# transitive dependency at the version and sha256 in requirements.lock / requirements-dev.lock
# (made from the top-level pins in requirements*.txt by scripts/lock.sh).
# Usage: scripts/bootstrap.sh [requirements file]   (default: requirements.txt)
# torch is the CPU build (2.13.0+cpu): where it is not in a local wheel store, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
REQS="${1:-requirements.txt}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "Switchboard needs Python 3.11 (Django 5.2 LTS, torch 2.13 pins); found: $("$PYTHON" --version 2>&1)." >&2
  echo "Install python3.11 (and python3.11-venv on Debian/Ubuntu) or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
LOCK="${REQS%.txt}.lock"
if [ ! -f "$LOCK" ]; then
  echo "No lock file $LOCK for $REQS: run scripts/lock.sh." >&2
  exit 1
fi
STAMP=".venv/.installed-$(basename "$LOCK")"
if [ ! -f "$STAMP" ] || [ "$LOCK" -nt "$STAMP" ]; then
  echo "==> installing $LOCK into .venv (hashes checked)"
  # --no-deps: the lock lists every dependency; anything missing from it is an error, not a download.
  .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$LOCK"
  .venv/bin/python -m pip check
  touch "$STAMP"
fi
