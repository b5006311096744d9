"""manage.py load_demo: teams, tickets, users and token, idempotent, passwords kept."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from finetune.models import Ticket
from routing.models import Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_dir(tmp_path):
    teams = [
        {"slug": "cards", "name": "Cards", "description": "Card problems"},
        {"slug": "fx", "name": "Exchange & FX", "description": "Currencies"},
    ]
    tickets = [
        {"text": "My card was swallowed by the ATM", "team": "cards"},
        {"text": "What is the EUR rate today?", "team": "fx"},
        {"text": "hello?", "team": None},
    ]
    (tmp_path / "teams.json").write_text(json.dumps(teams), encoding="utf-8")
    (tmp_path / "tickets.jsonl").write_text("\n".join(json.dumps(t) for t in tickets), encoding="utf-8")
    return tmp_path


def _run(capsys, *args) -> str:
    call_command("load_demo", *args)
    return capsys.readouterr().out


def test_load_demo_creates_everything_and_prints_credentials(demo_dir, capsys):
    """Teams, demo tickets, admin + one agent per team, a token, and a credentials table."""
    out = _run(capsys, "--data-dir", str(demo_dir), "--password", "demo-pass-123")
    assert Team.objects.get(slug="fx").description == "Currencies"
    assert Ticket.objects.filter(source=Ticket.Source.DEMO).count() == 3
    users = get_user_model().objects
    admin = users.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("demo-pass-123")
    agent = users.get(username="agent-cards")
    assert not agent.is_staff and list(agent.teams.values_list("slug", flat=True)) == ["cards"]
    assert agent.has_perm("chatbot.work_triage"), "the demo's agents work the triage queue"
    token = Token.objects.get(user=admin)
    assert token.key in out
    assert "agent-fx" in out and "demo-pass-123" in out and "username" in out


def test_load_demo_twice_changes_nothing(demo_dir, capsys):
    """A second run adds no tickets, keeps passwords and the token, and says '(unchanged)'."""
    first = _run(capsys, "--data-dir", str(demo_dir))
    generated = next(line.split()[1] for line in first.splitlines() if line.strip().startswith("admin "))
    second = _run(capsys, "--data-dir", str(demo_dir))
    assert Ticket.objects.count() == 3
    assert get_user_model().objects.get(username="admin").check_password(generated)
    assert "(unchanged)" in second and generated not in second
    assert Token.objects.count() == 1


def test_reset_passwords_sets_new_ones(demo_dir, capsys):
    """--reset-passwords gives existing users the new password."""
    _run(capsys, "--data-dir", str(demo_dir), "--password", "first-pass-123")
    _run(capsys, "--data-dir", str(demo_dir), "--password", "second-pass-456", "--reset-passwords")
    assert get_user_model().objects.get(username="agent-fx").check_password("second-pass-456")


def test_missing_or_broken_data_is_a_clear_error(tmp_path):
    """A missing data dir or a ticket with an unknown team fails with nothing written."""
    with pytest.raises(CommandError, match="teams.json not found"):
        call_command("load_demo", "--data-dir", str(tmp_path))
    (tmp_path / "teams.json").write_text(json.dumps([{"slug": "cards", "name": "Cards"}]))
    (tmp_path / "tickets.jsonl").write_text('{"text": "x", "team": "nowhere"}\n')
    with pytest.raises(CommandError, match="Label 'nowhere' matches no team"):
        call_command("load_demo", "--data-dir", str(tmp_path))
    assert not Team.objects.exists() and not get_user_model().objects.exists()


def test_malformed_teams_file_is_refused(tmp_path):
    """A teams.json entry without a slug is named in the error."""
    (tmp_path / "teams.json").write_text(json.dumps([{"name": "No slug"}]))
    with pytest.raises(CommandError, match="team #1 needs string 'slug' and 'name'"):
        call_command("load_demo", "--data-dir", str(tmp_path))
