"""The laptop rule: a scale test whose service does not answer is skipped and listed; in CI it fails."""

from __future__ import annotations

import pytest

import tests.services

TEST_FILE = """
import pytest

@pytest.mark.scale("redis")
def test_needs_redis():
    pass

@pytest.mark.scale
def test_needs_nothing_but_processes():
    pass

def test_plain():
    pass
"""


@pytest.fixture
def no_services(monkeypatch):
    """Both services looked for on a port where nothing listens (port 9: discard, closed here)."""
    monkeypatch.setattr(
        tests.services, "SERVICES", {"redis": "redis://127.0.0.1:9/0", "postgres": "postgres://x@127.0.0.1:9/x"}
    )
    tests.services.service_answers.cache_clear()
    yield
    tests.services.service_answers.cache_clear()


def _run(pytester, monkeypatch, require: str | None):
    if require is None:
        monkeypatch.delenv(tests.services.REQUIRE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(tests.services.REQUIRE_VARIABLE, require)
    pytester.makepyfile(test_scale=TEST_FILE)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    scale: services\n")
    return pytester.runpytest_inprocess("-p", "tests.services", "-p", "no:django", "-p", "no:cacheprovider")


def test_skipped_and_listed_without_the_service(pytester, monkeypatch, no_services):
    """Without Redis the Redis test is skipped, the others pass, and the summary lists it and how to enable it."""
    result = _run(pytester, monkeypatch, require=None)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*1 scale tests did not run (no service)*",
            "*test_scale.py::test_needs_redis  (needs redis)",
            "To run them: start Redis on 127.0.0.1:6379*SWITCHBOARD_REQUIRE_SERVICES=1*",
        ]
    )


def test_required_services_turn_the_skip_into_a_failure(pytester, monkeypatch, no_services):
    """With SWITCHBOARD_REQUIRE_SERVICES=1 (CI) the same test fails, naming the missing service."""
    result = _run(pytester, monkeypatch, require="1")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*redis at redis://127.0.0.1:9/0 does not answer, and SWITCHBOARD_REQUIRE_SERVICES=1*"]
    )
    assert "did not run" not in result.stdout.str()
