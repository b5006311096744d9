"""Retention of django-axes' login records: delete rows older than LOGIN_LOG_RETENTION_DAYS.

axes writes an ``AccessLog`` per login, an ``AccessFailureLog`` per failure (when enabled) and
one ``AccessAttempt`` per username + address + user agent that failed, and prunes none of them
unless a login for that same client comes along. ``AccessAttempt`` is what locks a client out:
a lockout lasts ``AXES_COOLOFF_TIME`` from its last failure (``attempt_time``), so an attempt is
only deleted when both the retention and the cool-off have passed since then (and its
expiration, with ``AXES_USE_ATTEMPT_EXPIRATION``); without a cool-off (locked until reset) no
attempt is deleted at all.
"""

from __future__ import annotations

from datetime import timedelta

from axes.conf import settings  # django settings with axes defaults filled in
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.utils import timezone


def login_log_prune(*, older_than_days: int) -> dict[str, int]:
    """Delete axes login records older than ``older_than_days`` (<= 0: keep everything).

    Returns the rows deleted per model (``access_log``, ``access_failure_log``, ``access_attempt``).
    """
    if older_than_days <= 0:
        return {"access_log": 0, "access_failure_log": 0, "access_attempt": 0}
    handler = AxesDatabaseHandler()  # axes' own age-based deletes of the two logs
    return {
        "access_log": handler.reset_logs(age_days=older_than_days),
        "access_failure_log": handler.reset_failure_logs(age_days=older_than_days),
        "access_attempt": _attempts_prune(older_than=timedelta(days=older_than_days)),
    }


def _attempts_prune(*, older_than: timedelta) -> int:
    cool_off = get_cool_off()
    if cool_off is None:  # a lockout lasts until someone resets it: every attempt may still count
        return 0
    now = timezone.now()
    stale = AccessAttempt.objects.filter(attempt_time__lt=now - max(older_than, cool_off))
    if settings.AXES_USE_ATTEMPT_EXPIRATION:
        stale = stale.exclude(expiration__expires_at__gt=now)
    count, _ = stale.delete()
    return count
