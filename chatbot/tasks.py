"""The chat's periodic jobs (django-tasks; enqueued by ``manage.py run_scheduler``)."""

from __future__ import annotations

from django_tasks import task

from chatbot.conversation_routing import conversations_triage_waiting
from chatbot.core.conf import setting
from chatbot.login_log import login_log_prune
from chatbot.services import conversations_purge_empty


@task()
def purge_empty_conversations() -> int:
    """Delete conversations that never got a message (abandoned before anything was written)."""
    return conversations_purge_empty(older_than_seconds=float(setting("EMPTY_CONVERSATION_MAX_AGE_SECONDS")))


@task()
def triage_waiting_conversations() -> int:
    """Conversations that have carried no intent for WAITING_MAX_SECONDS go to the triage queue."""
    return conversations_triage_waiting(older_than_seconds=float(setting("WAITING_MAX_SECONDS")))


@task()
def prune_login_log() -> dict[str, int]:
    """Delete django-axes login records older than LOGIN_LOG_RETENTION_DAYS (live lockouts kept)."""
    return login_log_prune(older_than_days=int(setting("LOGIN_LOG_RETENTION_DAYS")))
