"""The scale tests' services: skipped with a list when PostgreSQL or Redis is not there, failed in CI.

A test marked ``scale("redis")`` / ``scale("postgres")`` needs that server. Where it does not
answer, the test is skipped and the run ends with the list of what did not run and how to
enable it; with SWITCHBOARD_REQUIRE_SERVICES=1 (set by .ci/run) the same test fails instead,
so CI cannot pass without having run them.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

REQUIRE_VARIABLE = "SWITCHBOARD_REQUIRE_SERVICES"
# Where the scale tests look for each service (the addresses .ci/run starts them on).
SERVICES = {"redis": "redis://127.0.0.1:6379/0", "postgres": "postgres://postgres@127.0.0.1:5432/postgres"}
HOW_TO_ENABLE = (
    "start Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres, databases postgres and "
    f"test), then re-run; .ci/run starts both and sets {REQUIRE_VARIABLE}=1, which turns these skips into failures"
)
_not_run = pytest.StashKey[list]()


@functools.cache
def service_answers(name: str) -> bool:
    """Whether the service's host accepts a TCP connection on its port (within half a second)."""
    url = urlsplit(SERVICES[name])
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_not_run] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("scale")
    unknown = [name for name in (marker.args if marker else ()) if name not in SERVICES]
    if unknown:
        pytest.fail(f"scale marker names unknown services {unknown}; known: {sorted(SERVICES)}", pytrace=False)
    missing = [name for name in (marker.args if marker else ()) if not service_answers(name)]
    if not missing:
        return
    where = ", ".join(f"{name} at {SERVICES[name]}" for name in missing)
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{where} does not answer, and {REQUIRE_VARIABLE}=1 requires it", pytrace=False)
    item.config.stash[_not_run].append((item.nodeid, missing))
    pytest.skip(f"needs {where}, which does not answer")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    not_run = config.stash.get(_not_run, [])
    if not not_run:
        return
    terminalreporter.section(f"{len(not_run)} scale tests did not run (no service)", yellow=True)
    for nodeid, missing in not_run:
        terminalreporter.line(f"  {nodeid}  (needs {', '.join(missing)})")
    terminalreporter.line(f"To run them: {HOW_TO_ENABLE}.")
