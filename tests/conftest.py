"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from routing.models import Team

# The scale tests' services (skip where absent, fail in CI); pytester tests that rule.
pytest_plugins = ["tests.services", "pytester"]

TEAM_SLUGS = ["billing", "accounts", "bugs"]


@pytest.fixture
def teams(db) -> list[Team]:
    """Three active teams: billing, accounts, bugs."""
    return [Team.objects.create(slug=slug, name=slug.title()) for slug in TEAM_SLUGS]


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        "staff", "staff@example.com", "staff-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def agent_user(db, teams):
    """A non-staff agent who belongs to the billing team only and may work triage (chatbot.work_triage)."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("agent", "agent@example.com", "agent-pass-123")
    teams[0].members.add(user)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="chatbot", codename="work_triage"))
    return user


@pytest.fixture
def plain_user(db):
    return get_user_model().objects.create_user("plain", "plain@example.com", "plain-pass-123")


@pytest.fixture(autouse=True)
def router_recheck_at_first_use():
    """Each test starts with the process router due for a check, so it sees the test's own data."""
    from routing.router import get_router

    get_router()._checked_at = float("-inf")


@pytest.fixture(autouse=True)
def chat_db_threads_drained():
    """After each test, wait for chat DB work still running on the chat threads (a socket's
    background writes can outlive the test); otherwise PostgreSQL's flush of a transactional
    test can deadlock with it. Set up after pytest-django's db fixtures, so torn down before."""
    yield
    from chatbot import chat_db

    pool, chat_db._db_pool = chat_db._db_pool, None
    if pool is not None:
        pool.shutdown(wait=True)
