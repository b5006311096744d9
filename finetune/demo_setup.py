"""Load the demo: teams, labelled tickets, an admin and one agent per team (triage too), an API token.

Idempotent: teams are updated in place, tickets already present are skipped, and existing
users keep their passwords unless asked to reset them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from rest_framework.authtoken.models import Token

from chatbot.core.errors import SwitchboardError
from finetune.importing import tickets_import
from finetune.models import Ticket
from finetune.ticket_files import ImportReport
from routing.models import Team

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "demo"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoCredential:
    username: str
    # None when the user already existed and its password was left alone.
    password: str | None
    role: str
    team: str


@dataclass
class DemoResult:
    teams: list[Team] = field(default_factory=list)
    tickets: ImportReport | None = None
    credentials: list[DemoCredential] = field(default_factory=list)
    token: str = ""


def demo_teams_read(*, path: Path) -> list[dict[str, str]]:
    """The demo team list, validated: a JSON list of {slug, name, description}."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SwitchboardError(f"{path} not found; pass --data-dir to point at the demo data.")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SwitchboardError(f"{path} is not valid UTF-8 JSON: {exc}.")
    if not isinstance(value, list) or not value:
        raise SwitchboardError(f"{path} must be a non-empty JSON list of teams.")
    for position, item in enumerate(value, start=1):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), str) and item[key].strip() for key in ("slug", "name")
        ):
            raise SwitchboardError(f"{path}: team #{position} needs string 'slug' and 'name', got {item!r}.")
    return value


def _teams_upsert(rows: list[dict[str, str]]) -> list[Team]:
    teams = []
    for row in rows:
        team, _ = Team.objects.update_or_create(
            slug=row["slug"].strip(),
            defaults={"name": row["name"].strip(), "description": str(row.get("description") or "")},
        )
        teams.append(team)
    return teams


def _user_ensure(*, username: str, password: str | None, reset: bool, staff: bool) -> tuple:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"is_staff": staff, "is_superuser": staff}
    )
    if not created and not reset:
        return user, None
    chosen = password or secrets.token_urlsafe(12)
    user.set_password(chosen)
    user.is_active = True
    user.save()
    return user, chosen


def demo_users_ensure(
    *, teams: list[Team], password: str | None = None, reset_passwords: bool = False
) -> tuple[list[DemoCredential], str]:
    """A staff superuser ``admin`` (with an API token) and an ``agent-<slug>`` per team."""
    admin, admin_password = _user_ensure(username=ADMIN_USERNAME, password=password, reset=reset_passwords, staff=True)
    credentials = [DemoCredential(ADMIN_USERNAME, admin_password, "admin (staff, superuser)", "all")]
    # The demo's agents work the triage queue too: non-staff agents need this permission for it.
    triage = Permission.objects.get(content_type__app_label="chatbot", codename="work_triage")
    for team in teams:
        agent, agent_password = _user_ensure(
            username=f"agent-{team.slug}", password=password, reset=reset_passwords, staff=False
        )
        team.members.add(agent)
        agent.user_permissions.add(triage)
        credentials.append(DemoCredential(agent.get_username(), agent_password, "agent + triage", team.slug))
    token, _ = Token.objects.get_or_create(user=admin)
    return credentials, token.key


@transaction.atomic
def demo_load(
    *, data_dir: Path = DEFAULT_DATA_DIR, password: str | None = None, reset_passwords: bool = False
) -> DemoResult:
    """Load teams.json and tickets.jsonl from ``data_dir``, then the demo users; all or nothing."""
    data_dir = Path(data_dir)
    tickets_path = data_dir / "tickets.jsonl"
    teams = _teams_upsert(demo_teams_read(path=data_dir / "teams.json"))
    if not tickets_path.is_file():
        raise SwitchboardError(f"{tickets_path} not found; pass --data-dir to point at the demo data.")
    report = tickets_import(
        stream_or_path=tickets_path,
        fmt="jsonl",
        text_column="text",
        label_column="team",
        create_teams=False,
        source=Ticket.Source.DEMO,
    )
    if not report.ok:
        raise SwitchboardError("\n".join(report.summary_lines()), code="demo_tickets_invalid")
    credentials, token = demo_users_ensure(teams=teams, password=password, reset_passwords=reset_passwords)
    return DemoResult(teams=teams, tickets=report, credentials=credentials, token=token)
