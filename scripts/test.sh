#!/usr/bin/env bash
# Set up (.venv, pinned requirements, headless Chromium) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/routing -x
# Without PostgreSQL and Redis on 127.0.0.1 the scale tests that need them are skipped and listed
# at the end, with how to enable them; SWITCHBOARD_REQUIRE_SERVICES=1 (.ci/run) fails them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium for the browser tests (playwright drives /usr/bin/chromium)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }; then
    echo "Could not install chromium: run 'sudo apt-get install chromium' once, then re-run." >&2
    exit 1
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
