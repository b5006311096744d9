"""The labelling admin, driven through the Django test client as a staff user."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from chatbot.core.text import text_hash
from finetune.models import Ticket
from routing.models import Team

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:finetune_ticket_changelist"


def _ticket(text: str, team: Team | None = None, **fields) -> Ticket:
    return Ticket.objects.create(text=text, text_hash=text_hash(text), team=team, **fields)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def _action(client, action: str, tickets: list[Ticket]):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [t.pk for t in tickets], "index": 0},
        follow=True,
    )


@override_settings(SWITCHBOARD={"MIN_TICKETS_PER_TEAM": 2})
def test_changelist_shows_counts_and_readiness(staff_client, teams):
    """The changelist panel lists labelled counts per team and says what is missing."""
    _ticket("a", teams[0])
    _ticket("b", teams[0])
    _ticket("c", teams[1])
    _ticket("junk", teams[2], excluded=True)
    response = staff_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="label-readiness"' in body
    assert "Not ready: Accounts has 1, Bugs has 0 (need 2 each)." in body
    assert "Import tickets" in body and "Export CSV" in body
    assert f'action="{reverse("admin:finetune_trainingrun_start")}"' in body


@override_settings(SWITCHBOARD={"MIN_TICKETS_PER_TEAM": 1})
def test_changelist_says_ready_when_every_team_has_enough(staff_client, teams):
    """With enough labelled tickets everywhere the panel says training can start."""
    for team in teams:
        _ticket(f"text for {team.slug}", team)
    body = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert "Ready to train: every team has at least 1 labelled tickets." in body


def test_hostile_html_renders_as_text(staff_client):
    """Ticket text with markup is escaped in the list, never rendered."""
    _ticket("<script>alert('pwned')</script>")
    body = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert "<script>alert('pwned')</script>" not in body
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in body


def test_filters_and_search(staff_client, teams):
    """The unlabelled filter and text search narrow the list."""
    _ticket("refund for order 1", teams[0])
    _ticket("nobody has labelled me")
    body = staff_client.get(reverse(CHANGELIST), {"labelled": "no"}).content.decode()
    assert "nobody has labelled me" in body and "refund for order 1" not in body
    body = staff_client.get(reverse(CHANGELIST), {"q": "refund"}).content.decode()
    assert "refund for order 1" in body and "nobody has labelled me" not in body


def test_list_editable_label_stamps_labeller(staff_client, staff_user, teams):
    """Choosing a team in the list saves it and records who labelled it and when."""
    ticket = _ticket("please label me")
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(ticket.pk),
        "form-0-team": str(teams[1].pk),
        "_save": "Save",
    }
    response = staff_client.post(reverse(CHANGELIST), data)
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.team == teams[1]
    assert ticket.labelled_by == staff_user and ticket.labelled_at is not None


def test_bulk_label_action_per_team(staff_client, staff_user, teams):
    """Every active team has a 'Label as' action that labels the selected tickets."""
    Team.objects.create(slug="retired", name="Retired", active=False)
    tickets = [_ticket("one"), _ticket("two")]
    changelist = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert "Label as Billing" in changelist and "Label as Retired" not in changelist
    response = _action(staff_client, "label_as_billing", tickets)
    assert "Labelled 2 tickets as Billing." in response.content.decode()
    assert Ticket.objects.filter(team=teams[0], labelled_by=staff_user).count() == 2


def test_unlabel_exclude_include_actions(staff_client, teams):
    """Unlabel clears team and labeller; exclude and include toggle the junk flag."""
    ticket = _ticket("labelled", teams[0])
    _action(staff_client, "unlabel_tickets", [ticket])
    ticket.refresh_from_db()
    assert ticket.team is None and ticket.labelled_at is None
    _action(staff_client, "exclude_tickets", [ticket])
    assert Ticket.objects.get(pk=ticket.pk).excluded is True
    _action(staff_client, "include_tickets", [ticket])
    assert Ticket.objects.get(pk=ticket.pk).excluded is False


def test_export_action_and_link_are_formula_safe(staff_client, teams):
    """Exported CSV has the header, the tickets and a quote before formula-like cells."""
    evil = _ticket("=cmd|' /C calc'!A0", teams[0])
    _ticket("@SUM(1+1)")
    response = _action(staff_client, "export_csv", [evil])
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "text", "team"]
    assert rows[1][1:3] == ["'=cmd|' /C calc'!A0", "billing"] and len(rows) == 2
    response = staff_client.get(reverse("admin:finetune_ticket_export"), {"labelled": "no"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row[1] for row in rows[1:]] == ["'@SUM(1+1)"]


def test_import_upload_happy_path(staff_client, staff_user, teams):
    """Uploading a CSV with a pasted team map imports and returns to the list."""
    upload = SimpleUploadedFile("t.csv", b"text,intent\nrefund please,refund\nnew label,mobile\n")
    response = staff_client.post(
        reverse("admin:finetune_ticket_import"),
        {
            "file": upload,
            "text_column": "text",
            "label_column": "intent",
            "team_map_text": json.dumps({"refund": "billing"}),
            "create_teams": "on",
        },
    )
    assert response.status_code == 302
    assert Ticket.objects.get(text="refund please").labelled_by == staff_user
    assert Ticket.objects.get(text="new label").team.slug == "mobile"


def test_import_upload_error_path_writes_nothing(staff_client, teams):
    """A bad upload re-shows the form with each error and its line; nothing is imported."""
    upload = SimpleUploadedFile("t.csv", b"text,team\nfine,billing\n,billing\nx,nowhere\n")
    response = staff_client.post(
        reverse("admin:finetune_ticket_import"),
        {"file": upload, "text_column": "text", "label_column": "team"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "line 3: text is empty" in body and "Label &#x27;nowhere&#x27;" in body
    assert Ticket.objects.count() == 0


def test_import_refuses_bad_team_map_and_missing_file(staff_client):
    """Malformed team-map JSON and a missing file are form errors."""
    upload = SimpleUploadedFile("t.csv", b"text\nhello\n")
    response = staff_client.post(
        reverse("admin:finetune_ticket_import"),
        {"file": upload, "text_column": "text", "team_map_text": "[1, 2]"},
    )
    assert response.status_code == 400 and "Team map must be a JSON object" in response.content.decode()
    response = staff_client.post(reverse("admin:finetune_ticket_import"), {"text_column": "text"})
    assert response.status_code == 400 and Ticket.objects.count() == 0


@override_settings(SWITCHBOARD={"MAX_IMPORT_BYTES": 1000})
def test_import_refuses_oversized_upload(staff_client):
    """An upload far over the limit is refused from its size with a clear message."""
    junk = SimpleUploadedFile("junk.csv", b"text\n" + b"x" * 400_000)
    url = reverse("admin:finetune_ticket_import")
    response = staff_client.post(url, {"file": junk, "text_column": "text"})
    assert response.status_code == 413
    assert "the limit is 1,000 bytes" in response.content.decode()
    assert Ticket.objects.count() == 0


def test_import_form_renders(staff_client):
    """The import page shows the upload form."""
    response = staff_client.get(reverse("admin:finetune_ticket_import"))
    assert response.status_code == 200 and 'name="create_teams"' in response.content.decode()


def test_non_staff_is_redirected_to_login(client, plain_user):
    """A logged-in non-staff user cannot reach the changelist, import or export."""
    client.force_login(plain_user)
    for name in [CHANGELIST, "admin:finetune_ticket_import", "admin:finetune_ticket_export"]:
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_team_admin_lists_counts(staff_client, teams, agent_user):
    """The team list shows member and labelled-ticket counts."""
    _ticket("a", teams[0])
    _ticket("b", teams[0])
    response = staff_client.get(reverse("admin:routing_team_changelist"))
    assert response.status_code == 200
    rows = {team.slug: team for team in response.context["cl"].result_list}
    assert rows["billing"]._member_count == 1 and rows["billing"]._labelled_count == 2
    assert rows["bugs"]._labelled_count == 0


def test_import_still_checks_csrf(staff_user):
    """The size pre-check does not open a CSRF hole: a tokenless import POST is refused."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    upload = SimpleUploadedFile("t.csv", b"text\nhello\n")
    response = client.post(reverse("admin:finetune_ticket_import"), {"file": upload, "text_column": "text"})
    assert response.status_code == 403 and Ticket.objects.count() == 0


def test_not_a_request_tickets_are_shown_filtered_and_relabelled(staff_client, staff_user, teams):
    """ "Not a request" tickets say so in the list and have their own filter (not "unlabelled"); the action
    marks tickets so, and giving one a team in the list makes it that team's."""
    marked = _ticket("cheers, legend", no_intent=True, source=Ticket.Source.NOT_A_REQUEST)
    plain = _ticket("nobody has labelled me")
    listed = staff_client.get(reverse(CHANGELIST), {"labelled": "no_intent"}).content.decode()
    assert "cheers, legend" in listed and "not a request (no intent)" in listed and "nobody has labelled" not in listed
    unlabelled = staff_client.get(reverse(CHANGELIST), {"labelled": "no"}).content.decode()
    assert "nobody has labelled me" in unlabelled and "cheers, legend" not in unlabelled
    assert "Agent: not a request" in staff_client.get(reverse(CHANGELIST)).content.decode()
    _action(staff_client, "label_not_a_request", [plain])
    plain.refresh_from_db()
    assert (plain.no_intent, plain.team, plain.labelled_by) == (True, None, staff_user)
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(marked.pk),
        "form-0-team": str(teams[1].pk),
        "_save": "Save",
    }
    assert staff_client.post(reverse(CHANGELIST), data).status_code == 302
    marked.refresh_from_db()
    assert (marked.team, marked.no_intent) == (teams[1], False)


def test_the_change_form_refuses_a_team_and_not_a_request_together(staff_client, teams):
    """A ticket is a team's or "not a request", never both: the form says so and saves nothing."""
    ticket = _ticket("thanks")
    url = reverse("admin:finetune_ticket_change", args=[ticket.pk])
    form = {"text": "thanks", "team": str(teams[0].pk), "no_intent": "on", "source": "import", "external_id": ""}
    response = staff_client.post(url, form)
    assert response.status_code == 200 and "not both" in response.content.decode()
    ticket.refresh_from_db()
    assert (ticket.team, ticket.no_intent) == (None, False)
