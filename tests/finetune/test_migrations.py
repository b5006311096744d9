"""Data migrations: an upgrade keeps what worked before it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.fixture
def latest_schema_after():
    """Later tests get the schema of every migration again, not the one a test migrated back to."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_upgrade_lets_users_who_held_a_token_keep_ingesting_tickets(plain_user, latest_schema_after):
    """Ticket ingest now needs finetune.add_ticket: token holders from before the upgrade get it,
    users without a token do not."""
    _migrate(("finetune", "0001_initial"))
    Token.objects.create(user=plain_user)
    bystander = get_user_model().objects.create_user("bystander", "b@example.com", "pw-123456789")
    _migrate(("finetune", "0002_grant_ingest_to_existing_token_users"))
    assert get_user_model().objects.get(pk=plain_user.pk).has_perm("finetune.add_ticket")
    assert not get_user_model().objects.get(pk=bystander.pk).has_perm("finetune.add_ticket")
