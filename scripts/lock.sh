#!/usr/bin/env bash
# Regenerate the hashed lock files from the top-level pins (requirements*.txt), for Linux x86-64
# and Python 3.11. torch resolves to the CPU build (2.13.0+cpu) from the local wheel store or
# the PyTorch CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu); its hash is that wheel's.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPILE=(.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras
         --no-emit-index-url --no-emit-find-links --no-emit-trusted-host)
"${COMPILE[@]}" --output-file requirements.lock requirements.txt
"${COMPILE[@]}" --output-file requirements-dev.lock requirements-dev.txt
