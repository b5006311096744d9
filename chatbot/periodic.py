"""Periodic jobs: which django-tasks tasks run how often, and the scheduler that enqueues them.

``SWITCHBOARD["PERIODIC_JOBS"]`` maps a task's dotted path to its interval in seconds. One
``manage.py run_scheduler`` process (APScheduler) enqueues each task on its interval; the
workers (``manage.py db_worker``) run them like any other job, so a job is retried, logged and
never runs inside a web process. Every periodic job must be idempotent: a late or doubled run
changes nothing that a single run would not.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from django.utils.module_loading import import_string

from chatbot.core.conf import setting

logger = logging.getLogger(__name__)


def periodic_jobs() -> dict[str, float]:
    """Dotted task path -> interval in seconds, as configured (jobs with an interval <= 0 are off)."""
    jobs = setting("PERIODIC_JOBS")
    return {path: float(seconds) for path, seconds in jobs.items() if float(seconds) > 0}


def periodic_job_enqueue(path: str) -> None:
    """Queue one run of the task at ``path`` (called by the scheduler on its interval)."""
    try:
        import_string(path).enqueue()
    except Exception:  # a database hiccup must not stop the scheduler: the next interval tries again
        logger.exception("scheduler: could not enqueue %s", path)


def scheduler_build() -> BlockingScheduler:
    """A scheduler with one interval job per configured task; a missed run is coalesced, never stacked."""
    scheduler = BlockingScheduler(timezone="UTC")
    for path, seconds in periodic_jobs().items():
        import_string(path)  # an unknown path fails at start, not at the first interval
        scheduler.add_job(
            periodic_job_enqueue,
            "interval",
            seconds=seconds,
            args=[path],
            id=path,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(seconds)),
        )
    return scheduler
