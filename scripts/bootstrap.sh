#!/usr/bin/env bash
# Create .venv in the repo root (if missing) and install the pinned requirements.
# Usage: scripts/bootstrap.sh [requirements file]   (default: requirements.txt)
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
STAMP=".venv/.installed-$(basename "$REQS")"
if [ ! -f "$STAMP" ] || [ "$REQS" -nt "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
  echo "==> installing $REQS into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$REQS"
  touch "$STAMP"
fi
