"""The label-next admin page: order, the model's suggestion, and labelling, skipping, excluding."""

from __future__ import annotations

import pytest
from django.urls import reverse

from finetune.labelling import SCORE_BATCH, label_next_pick
from finetune.models import Ticket

URL = "/admin/finetune/label-next/"


def _shown(client) -> int:
    response = client.get(URL)
    assert response.status_code == 200
    suggestion = response.context["suggestion"]
    return suggestion.ticket.pk if suggestion else None


def test_url_name_is_label_next_index():
    """The page is reachable by name for links from the admin index."""
    assert reverse("label_next:index") == URL


def test_without_a_model_tickets_come_in_arrival_order(client, staff_user, teams, make_ticket):
    """Before any model exists the oldest unlabelled ticket is shown, with no suggestion."""
    first, second = make_ticket("first message"), make_ticket("second message")
    make_ticket("already labelled", team=teams[0])
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.context["suggestion"].ticket == first
    assert response.context["suggestion"].score is None
    assert b"arrival order" in response.content
    assert not any(team["suggested"] for team in response.context["teams"])
    assert response.context["suggestion"].remaining == 2 and second.team is None


def test_lowest_margin_is_shown_first_with_its_suggestion(client, staff_user, teams, make_ticket, scripted_router):
    """The ticket the model hesitates on most comes first, its guess pre-selected."""
    make_ticket("sure thing")
    unsure = make_ticket("torn between two")
    scripted_router(
        {
            "sure thing": {"billing": 0.9, "accounts": 0.05, "bugs": 0.05},
            "torn between two": {"billing": 0.44, "accounts": 0.46, "bugs": 0.10},
        }
    )
    client.force_login(staff_user)
    response = client.get(URL)
    suggestion = response.context["suggestion"]
    assert suggestion.ticket == unsure
    assert suggestion.score.team == "accounts" and suggestion.score.margin == pytest.approx(0.02)
    checked = [team["slug"] for team in response.context["teams"] if team["suggested"]]
    assert checked == ["accounts"]
    assert b'value="accounts" checked' in response.content and b"0.46" in response.content


def test_a_near_duplicate_is_not_shown_right_after_its_twin(client, staff_user, teams, make_ticket, scripted_router):
    """After labelling a ticket, its near-duplicate waits behind a more certain distinct one."""
    twin_a = make_ticket("I was charged twice for my subscription")
    twin_b = make_ticket("I was charged twice for my subscription!")
    other = make_ticket("the app crashes on start")
    scripted_router(
        {
            twin_a.text: {"billing": 0.41, "accounts": 0.40, "bugs": 0.19},
            twin_b.text: {"billing": 0.42, "accounts": 0.40, "bugs": 0.18},
            other.text: {"billing": 0.2, "accounts": 0.1, "bugs": 0.7},
        }
    )
    client.force_login(staff_user)
    assert _shown(client) == twin_a.pk
    client.post(URL, {"ticket": twin_a.pk, "team": "billing", "action": "label"})
    assert _shown(client) == other.pk
    client.post(URL, {"ticket": other.pk, "team": "bugs", "action": "label"})
    assert _shown(client) == twin_b.pk


def test_posting_a_label_sets_team_and_labeller(client, staff_user, teams, make_ticket):
    """Enter on the page posts the team; the ticket records who labelled it and when."""
    ticket = make_ticket("my invoice is wrong")
    client.force_login(staff_user)
    response = client.post(URL, {"ticket": ticket.pk, "team": "billing", "action": "label"})
    assert response.status_code == 302 and response["Location"] == URL
    ticket.refresh_from_db()
    assert ticket.team.slug == "billing" and ticket.labelled_by == staff_user and ticket.labelled_at is not None


def test_skip_is_remembered_for_this_session_only(client, staff_user, teams, make_ticket):
    """A skipped ticket stays unlabelled, is not shown again in this session, but is to others."""
    skipped, later = make_ticket("not sure about this one"), make_ticket("clear one")
    client.force_login(staff_user)
    client.post(URL, {"ticket": skipped.pk, "action": "skip"})
    assert _shown(client) == later.pk
    skipped.refresh_from_db()
    assert skipped.team is None and not skipped.excluded
    assert label_next_pick().ticket == skipped
    client.post(URL, {"action": "reset_skips"})
    assert _shown(client) == skipped.pk


def test_exclude_marks_junk_and_moves_on(client, staff_user, teams, make_ticket):
    """X excludes the ticket from training and from label next."""
    junk, real = make_ticket("asdfgh"), make_ticket("refund please")
    client.force_login(staff_user)
    client.post(URL, {"ticket": junk.pk, "action": "exclude"})
    junk.refresh_from_db()
    assert junk.excluded and junk.team is None
    assert _shown(client) == real.pk


def test_unknown_team_is_refused_with_a_message(client, staff_user, teams, make_ticket):
    """A bad team slug changes nothing and says which teams exist."""
    ticket = make_ticket("hello")
    client.force_login(staff_user)
    response = client.post(URL, {"ticket": ticket.pk, "team": "nope", "action": "label"}, follow=True)
    assert "Unknown team &#x27;nope&#x27;" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.team is None


def test_nothing_left_says_so(client, staff_user, teams):
    """With every ticket labelled the page says there is nothing left."""
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.context["suggestion"] is None and b"Nothing left to label" in response.content


def test_ticket_text_is_escaped(client, staff_user, teams, make_ticket):
    """Customer text is rendered as text, never as markup."""
    make_ticket("<script>alert(1)</script> help")
    client.force_login(staff_user)
    content = client.get(URL).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; help" in content and "<script>alert(1)" not in content


def test_non_staff_are_sent_to_login(client, plain_user):
    """Only staff with ticket change permission reach the page."""
    client.force_login(plain_user)
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_scores_are_cached_per_version_and_scored_in_batches(staff_user, teams, make_ticket, scripted_router):
    """A page view scores at most SCORE_BATCH new tickets; scored ones are not scored again."""
    tickets = Ticket.objects.bulk_create(
        Ticket(text=f"ticket number {n}", text_hash=str(n)) for n in range(SCORE_BATCH + 30)
    )
    router = scripted_router({})
    label_next_pick()
    assert [len(call) for call in router.calls] == [SCORE_BATCH]
    label_next_pick()
    label_next_pick()
    assert [len(call) for call in router.calls] == [SCORE_BATCH, 30]
    assert label_next_pick().remaining == len(tickets)


def test_unroutable_text_comes_first_to_be_excluded(client, staff_user, teams, make_ticket, scripted_router, settings):
    """A ticket the router refuses (too long) does not break the page: it is shown first, unscored."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MAX_TEXT_CHARS": 20}
    make_ticket("short and sure")
    too_long = make_ticket("this text is far longer than twenty characters")
    router = scripted_router({"short and sure": {"billing": 0.9, "accounts": 0.05, "bugs": 0.05}})
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.context["suggestion"].ticket == too_long
    assert b"cannot score this text" in response.content
    assert router.calls == [["short and sure"]]
