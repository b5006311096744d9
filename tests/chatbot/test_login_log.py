"""Retention of django-axes' login records (chatbot.login_log, the periodic job prune_login_log)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chatbot import periodic
from chatbot.core.conf import DEFAULTS
from chatbot.login_log import login_log_prune

# The worker closes "old" connections between tasks, which a TestCase transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True)

RIGHT = {"username": "staff", "password": "staff-pass-123"}
WRONG = {"username": "staff", "password": "not-the-password"}
CLIENT = {"user_agent": "pytest", "http_accept": "*/*", "path_info": "/agent/login/"}


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _aged(model, days: float, **fields):
    row = model.objects.create(**CLIENT, **fields)
    model.objects.filter(pk=row.pk).update(attempt_time=timezone.now() - timedelta(days=days))
    return row


def _attempt(username: str, days: float, failures: int = 1) -> AccessAttempt:
    return _aged(
        AccessAttempt,
        days,
        username=username,
        ip_address="203.0.113.9",
        get_data="",
        post_data="",
        failures_since_start=failures,
    )


def _surviving(model) -> set[str]:
    return set(model.objects.values_list("username", flat=True))


def test_rows_past_the_retention_go_and_newer_ones_stay():
    """Access log, failure log and attempts older than the retention are deleted; the rest is kept."""
    for model in (AccessLog, AccessFailureLog):
        _aged(model, 31, username="old", ip_address="203.0.113.9")
        _aged(model, 29, username="recent", ip_address="203.0.113.9")
    _attempt("old", 31)
    _attempt("recent", 29)

    deleted = login_log_prune(older_than_days=30)

    assert deleted == {"access_log": 1, "access_failure_log": 1, "access_attempt": 1}
    assert _surviving(AccessLog) == _surviving(AccessFailureLog) == _surviving(AccessAttempt) == {"recent"}


def test_a_lockout_longer_than_the_retention_is_not_lifted(settings, staff_user):
    """With a cool-off longer than the retention, the attempts of a locked-out user stay (and the
    lockout holds) until the cool-off has passed too."""
    settings.AXES_COOLOFF_TIME = timedelta(days=60)
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/agent/login/", WRONG)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=40))
    _attempt("past-cool-off", 61, failures=50)

    assert login_log_prune(older_than_days=30)["access_attempt"] == 1

    assert _surviving(AccessAttempt) == {"staff"}
    assert client.post("/agent/login/", RIGHT).status_code == 429


def test_without_a_cool_off_no_attempt_is_deleted(settings):
    """AXES_COOLOFF_TIME None locks out until a reset: attempts of any age still count, so none go."""
    settings.AXES_COOLOFF_TIME = None
    _attempt("locked-for-good", 400, failures=50)
    _aged(AccessLog, 400, username="logged-in", ip_address="203.0.113.9")

    assert login_log_prune(older_than_days=30) == {"access_log": 1, "access_failure_log": 0, "access_attempt": 0}
    assert _surviving(AccessAttempt) == {"locked-for-good"}


def test_a_retention_of_zero_keeps_everything():
    _aged(AccessLog, 400, username="old", ip_address="203.0.113.9")
    _attempt("old", 400)
    assert sum(login_log_prune(older_than_days=0).values()) == 0
    assert AccessLog.objects.count() == AccessAttempt.objects.count() == 1


def test_the_job_is_scheduled_by_default_and_runs_in_the_worker(settings):
    """prune_login_log is one of the default periodic jobs; enqueued, a worker's run of it reads
    LOGIN_LOG_RETENTION_DAYS and deletes what is older."""
    assert DEFAULTS["PERIODIC_JOBS"]["chatbot.tasks.prune_login_log"] > 0
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "LOGIN_LOG_RETENTION_DAYS": 7}
    _aged(AccessLog, 8, username="old", ip_address="203.0.113.9")
    _aged(AccessLog, 6, username="recent", ip_address="203.0.113.9")

    periodic.periodic_job_enqueue("chatbot.tasks.prune_login_log")
    call_command("db_worker", "--batch", "--queue-name", "default", "--no-startup-delay", "--no-reload", verbosity=0)

    assert _surviving(AccessLog) == {"recent"}
