"""Teams that change after training: merged, renamed, split (new), with 77 of them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from chatbot.core.errors import ConflictError, SwitchboardError
from chatbot.models import Conversation
from finetune.models import Ticket
from routing.models import Team
from routing.selectors import team_get_by_slug
from routing.teams import model_version_team_gaps, team_directory, team_merge

INVOICE_TEXT = "my invoice payment was charged twice"  # the tiny model's "accounts" topic words


def _teams() -> dict[str, Team]:
    return {team.slug: team for team in Team.objects.all()}


def test_a_merged_teams_label_routes_to_its_target_with_the_probabilities_added(router, teams, install_version):
    """After accounts is merged into billing, the same model answers billing for an accounts text,
    with accounts' probability added to billing's and no accounts score left."""
    install_version("v1", state="active")
    [before] = router.predict([INVOICE_TEXT])
    assert before.team == "accounts" and before.reason == "routed"
    team_merge(team=_teams()["accounts"], into=_teams()["billing"], user=None)
    [after] = router.predict([INVOICE_TEXT])
    assert after.team == "billing" and after.team_name == "Billing" and after.reason == "routed"
    assert set(after.scores) == {"billing", "bugs"}
    assert after.scores["billing"] == pytest.approx(before.scores["accounts"] + before.scores["billing"])


def test_a_merge_moves_tickets_and_open_conversations_and_deactivates_the_team(teams):
    """Tickets (and corrections from it) and open conversations move; closed ones keep their history."""
    billing, accounts = _teams()["billing"], _teams()["accounts"]
    ticket = Ticket.objects.create(text="reset my password", text_hash="a", team=accounts)
    correction = Ticket.objects.create(text="wrong inbox", text_hash="b", team=billing, corrected_from=accounts)
    now = timezone.now()
    open_one = Conversation.objects.create(team=accounts, routed_at=now)
    closed = Conversation.objects.create(team=accounts, routed_at=now, status=Conversation.Status.CLOSED)
    team_merge(team=accounts, into=billing, user=None)
    accounts.refresh_from_db()
    assert not accounts.active and accounts.merged_into == billing
    assert Ticket.objects.get(pk=ticket.pk).team == billing
    assert Ticket.objects.get(pk=correction.pk).corrected_from == billing
    assert Conversation.objects.get(pk=open_one.pk).team == billing
    assert Conversation.objects.get(pk=closed.pk).team == accounts


def test_merges_chain_into_one_step_and_refuse_what_makes_no_sense(teams):
    """A team merged into X, then X into Y: both route to Y. Itself, twice, or into a merged team: refused."""
    billing, accounts, bugs = (_teams()[slug] for slug in ("billing", "accounts", "bugs"))
    team_merge(team=accounts, into=billing, user=None)
    team_merge(team=billing, into=bugs, user=None)
    directory = team_directory()
    assert directory["accounts"].routes_to == "bugs" and directory["billing"].routes_to == "bugs"
    assert directory["bugs"].routes_to is None and directory["accounts"].name == "Bugs"
    with pytest.raises(SwitchboardError):
        team_merge(team=bugs, into=bugs, user=None)
    with pytest.raises(ConflictError):
        team_merge(team=Team.objects.get(slug="accounts"), into=bugs, user=None)
    other = Team.objects.create(slug="other", name="Other")
    with pytest.raises(SwitchboardError) as refused:
        team_merge(team=other, into=Team.objects.get(slug="billing"), user=None)
    assert refused.value.code == "inactive_team"


def test_an_old_slug_names_the_team_it_was_merged_into(teams):
    """Imports and reassignments that still say the old slug reach the merged-into team."""
    team_merge(team=_teams()["accounts"], into=_teams()["billing"], user=None)
    assert team_get_by_slug(slug="accounts").slug == "billing"


def test_a_rename_keeps_routing_and_the_slug_cannot_change(router, teams, install_version, admin_client):
    """The admin renames a team by its name; a posted slug is ignored; the router answers the new name."""
    install_version("v1", state="active")
    accounts = _teams()["accounts"]
    response = admin_client.post(
        f"/admin/routing/team/{accounts.pk}/change/",
        {
            "name": "Payments & Invoices",
            "slug": "payments",
            "description": "",
            "active": "on",
            "members": [],
        },
    )
    assert response.status_code == 302, response.content
    accounts.refresh_from_db()
    assert (accounts.slug, accounts.name) == ("accounts", "Payments & Invoices")
    [prediction] = router.predict([INVOICE_TEXT])
    assert (prediction.team, prediction.team_name) == ("accounts", "Payments & Invoices")


def test_a_team_created_after_training_asks_for_a_new_run(teams, install_version, admin_client):
    """A split (a new team taking some of a team's tickets) has no label: the team list says train again."""
    version = install_version("v1", state="active")
    assert not model_version_team_gaps(version=version).needs_new_run
    Team.objects.create(slug="cards", name="Cards")
    gaps = model_version_team_gaps(version=version)
    assert gaps.new_teams == ["cards"] and gaps.needs_new_run
    page = admin_client.get("/admin/routing/team/").content.decode()
    assert "trained before cards existed" in page and "new training run" in page


def test_a_merge_is_reported_as_such_not_as_a_gap(teams, install_version):
    version = install_version("v1", state="active")
    team_merge(team=_teams()["bugs"], into=_teams()["billing"], user=None)
    gaps = model_version_team_gaps(version=version)
    assert gaps.merged == {"bugs": "billing"} and gaps.new_teams == [] and gaps.missing_teams == []


def test_the_admin_merges_a_team_from_its_page(teams, admin_client, client, plain_user):
    """Staff pick the target on the merge page; the team is merged. A non-staff user cannot reach it."""
    accounts, billing = _teams()["accounts"], _teams()["billing"]
    page = admin_client.get(f"/admin/routing/team/{accounts.pk}/change/").content.decode()
    assert f"/admin/routing/team/{accounts.pk}/merge/" in page
    response = admin_client.post(f"/admin/routing/team/{accounts.pk}/merge/", {"into": billing.pk})
    assert response.status_code == 302 and response["Location"] == f"/admin/routing/team/{billing.pk}/change/"
    assert Team.objects.get(pk=accounts.pk).merged_into_id == billing.pk
    client.force_login(plain_user)
    bugs = _teams()["bugs"]
    assert client.post(f"/admin/routing/team/{bugs.pk}/merge/", {"into": billing.pk}).status_code == 302  # to login
    assert Team.objects.get(pk=bugs.pk).merged_into_id is None


def test_the_team_list_and_directory_hold_77_teams(db, admin_client):
    """Banking77's intents as teams: the admin list, the directory and the gaps work at that size."""
    Team.objects.bulk_create([Team(slug=f"intent-{i}", name=f"Intent {i}") for i in range(77)])
    assert len(team_directory()) == 77
    page = admin_client.get("/admin/routing/team/?all=").content.decode()
    assert "intent-0" in page and "intent-76" in page and "77 teams" in page
