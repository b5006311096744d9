"""manage.py backup / restore: a fresh database and model store serve the same active model."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from chatbot.models import Conversation, Message
from finetune.models import Ticket
from routing.models import ModelVersion, Team
from routing.router import Router
from tests.ml_fixtures import install_active_tiny_version

pytestmark = pytest.mark.django_db(transaction=True)

LABELS = ["accounts", "billing", "bugs"]
TEXTS = ["my invoice payment was charged twice", "why can i not login to my account today", "the screen shows an error"]


@pytest.fixture
def installation(settings, tmp_path):
    """Teams, a labelled ticket, an agent with a conversation, and an active tiny model in its store."""
    store = tmp_path / "store"
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MODEL_STORE": str(store), "ROUTER_RELOAD_SECONDS": 0}
    teams = {slug: Team.objects.create(slug=slug, name=slug.title()) for slug in LABELS}
    agent = get_user_model().objects.create_user("bella", "bella@example.com", "bella-pass-123")
    teams["billing"].members.add(agent)
    Ticket.objects.create(text="refund my invoice", text_hash="h1", team=teams["accounts"])
    conversation = Conversation.objects.create(team=teams["accounts"])
    Message.objects.create(conversation=conversation, sender=Message.Sender.CUSTOMER, text="refund my invoice")
    install_active_tiny_version(store, LABELS)
    return store


def test_a_restored_installation_serves_the_same_model_and_keeps_every_row(installation, tmp_path):
    """Backup, wipe database and store, restore: the same version answers the same, rows and logins are back."""
    before = [(p.team, p.reason, round(p.confidence, 6)) for p in Router().predict(TEXTS)]
    backup = tmp_path / "switchboard.tar.gz"
    call_command("backup", str(backup))
    call_command("flush", interactive=False)
    shutil.rmtree(installation)

    call_command("restore", str(backup))
    after = Router().predict(TEXTS)
    assert [(p.team, p.reason, round(p.confidence, 6)) for p in after] == before
    assert after[0].model_version == str(ModelVersion.objects.get(state="active").pk)
    assert (Team.objects.count(), Ticket.objects.count(), Conversation.objects.count(), Message.objects.count()) == (
        3,
        1,
        1,
        1,
    )
    agent = get_user_model().objects.get(username="bella")
    assert agent.check_password("bella-pass-123") and list(agent.teams.values_list("slug", flat=True)) == ["billing"]


def test_restore_refuses_a_database_in_use_and_a_corrupt_artifact(installation, tmp_path):
    """Restoring over live data is refused; a backup whose active model was corrupted does not say done."""
    backup = tmp_path / "switchboard.tar.gz"
    call_command("backup", str(backup))
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(backup))

    version = ModelVersion.objects.get(state="active")
    (installation / version.artifact_dir / "labels.json").write_text('["tampered"]')
    call_command("backup", str(backup))
    call_command("flush", interactive=False)
    shutil.rmtree(installation)
    with pytest.raises(CommandError, match="do not verify"):
        call_command("restore", str(backup))
    assert not ModelVersion.objects.exists() and not installation.exists()  # nothing half-restored
