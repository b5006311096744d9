"""REST API happy paths: route, teams, tickets, models, promote, rollback, health."""

from __future__ import annotations

import pytest

from finetune.models import Ticket
from routing.models import ModelVersion
from tests.routing.conftest import LABELS_V1

pytestmark = pytest.mark.django_db


def test_route_one_text(api, router, teams, install_version):
    """POST route with text answers team, name, confidence, triage, scores and version."""
    version = install_version("v1", state="active")
    response = api.post("/api/v1/route", {"text": "my invoice payment was charged twice"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"team", "team_name", "confidence", "triage", "reason", "language", "scores", "model_version"}
    assert body["reason"] in {"routed", "low_confidence"} and body["triage"] == (body["reason"] != "routed")
    assert body["model_version"] == str(version.pk) and sorted(body["scores"]) == LABELS_V1
    assert Ticket.objects.count() == 0


def test_route_a_batch(api, router, teams, install_version):
    """POST route with texts answers one result per text, all from one version."""
    version = install_version("v1", state="active")
    response = api.post("/api/v1/route", {"texts": ["card", "login", "crash"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == str(version.pk)
    assert [r["model_version"] for r in body["results"]] == [str(version.pk)] * 3


def test_route_without_a_model_says_no_model(api, router, teams):
    """Before any training, route answers reason no_model: no team, triage, no version."""
    response = api.post("/api/v1/route", {"text": "card"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["reason"], body["team"], body["triage"], body["model_version"]) == ("no_model", None, True, None)
    batch = api.post("/api/v1/route", {"texts": ["card", "login"]}, format="json").json()
    assert [r["reason"] for r in batch["results"]] == ["no_model", "no_model"]
    assert ModelVersion.objects.count() == 0


def test_route_messages_routes_the_conversation_without_its_greeting(api, monkeypatch, teams):
    """`messages`: no-intent turns are left out; one intent turn answers alone, several are read joined."""
    from tests.chatbot.conftest import KeywordRouter

    keyword = KeywordRouter()
    keyword.predict = lambda texts: [keyword._one(text) for text in texts]
    monkeypatch.setattr("routing.apis.get_router", lambda: keyword)
    answer = api.post("/api/v1/route", {"messages": ["hi", "a crash on start", "thanks"]}, format="json").json()
    assert (answer["team"], answer["reason"]) == ("bugs", "routed")
    greeting = api.post("/api/v1/route", {"messages": ["hello", "ok"]}, format="json").json()
    assert (greeting["team"], greeting["reason"], greeting["triage"]) == (None, "no_intent", False)
    split = api.post("/api/v1/route", {"messages": ["a crash", "when I ask for a refund"]}, format="json").json()
    assert split["team"] == "billing"


def test_route_messages_reads_the_newest_turns_together_when_the_intent_turns_do_not_route(api, monkeypatch, teams):
    """A question typed over two messages whose halves score as no intent alone: routed on both."""
    from tests.chatbot.conftest import FragmentRouter

    fragments = FragmentRouter()
    fragments.predict = lambda texts: [fragments._one(text) for text in texts]
    monkeypatch.setattr("routing.apis.get_router", lambda: fragments)
    answer = api.post("/api/v1/route", {"messages": ["hi", *FragmentRouter.HALVES]}, format="json").json()
    assert (answer["team"], answer["reason"]) == ("billing", "routed")
    alone = api.post("/api/v1/route", {"messages": list(FragmentRouter.HALVES[:1])}, format="json").json()
    assert alone["reason"] == "no_intent"


def test_route_messages_does_not_reread_newest_turns_the_intent_turns_already_joined(api, monkeypatch, teams):
    """Three unsure turns, all carrying an intent: their joined text is the answer; the newest two
    are not scored again on their own (they were read together already)."""
    from tests.chatbot.conftest import KeywordRouter

    keyword = KeywordRouter()
    keyword.predict = lambda texts: (keyword.seen.extend(texts), [keyword._one(text) for text in texts])[1]
    monkeypatch.setattr("routing.apis.get_router", lambda: keyword)
    turns = ["something is odd", "still odd", "very odd"]
    answer = api.post("/api/v1/route", {"messages": turns}, format="json").json()
    assert (answer["reason"], answer["triage"]) == ("low_confidence", True)
    assert keyword.seen == [*turns, "\n".join(turns)]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"text": "a", "messages": ["b"]},
        {"texts": ["a"], "messages": ["b"]},
        {"messages": []},
        {"messages": "not a list"},
        {"messages": ["ok", 3]},
        {"messages": ["x"] * 201},
    ],
)
def test_route_refuses_anything_but_exactly_one_valid_input(api, router, teams, payload):
    """Exactly one of text / texts / messages, each a non-empty list of strings within its limit: else 400."""
    response = api.post("/api/v1/route", payload, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_teams_lists_every_team(api, teams):
    """GET teams lists slugs, names and thresholds, sorted by slug."""
    response = api.get("/api/v1/teams")
    assert response.status_code == 200
    assert [t["slug"] for t in response.json()] == ["accounts", "billing", "bugs"]


def test_ticket_ingest_is_idempotent_on_external_id(ingest_api, teams):
    """First post creates (201); the same external_id again returns the same id (200)."""
    payload = {"text": "Refund my card", "team": "billing", "external_id": "zd-1"}
    first = ingest_api.post("/api/v1/tickets", payload, format="json")
    again = ingest_api.post("/api/v1/tickets", payload, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    ticket = Ticket.objects.get()
    assert (ticket.team.slug, ticket.source, ticket.external_id) == ("billing", "api", "zd-1")


def test_ticket_with_unknown_team_lists_known_teams(ingest_api, teams):
    """An unknown team slug is refused (404 unknown_team) naming the known teams; nothing written."""
    response = ingest_api.post("/api/v1/tickets", {"text": "hi", "team": "nope"}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_team" and "accounts, billing, bugs" in response.json()["detail"]
    assert Ticket.objects.count() == 0


def test_bulk_ingest_creates_and_reports_each_item(ingest_api, teams):
    """A bulk post creates new tickets (201) and a resend reports every item as existing (200)."""
    payload = {"tickets": [{"text": "a bug", "team": "bugs", "external_id": "1"}, {"text": "unlabelled"}]}
    first = ingest_api.post("/api/v1/tickets", payload, format="json")
    assert first.status_code == 201
    assert (first.json()["created"], first.json()["existing"]) == (2, 0)
    resend = ingest_api.post("/api/v1/tickets", {"tickets": payload["tickets"][:1]}, format="json")
    assert resend.status_code == 200 and resend.json()["results"][0]["created"] is False
    assert Ticket.objects.count() == 2


def test_bulk_ingest_with_an_invalid_item_writes_nothing(ingest_api, teams):
    """Any invalid item → 400 listing each bad index and why; no ticket is written."""
    payload = {"tickets": [{"text": "ok"}, {"text": "   "}, {"text": "x", "team": "nope"}]}
    response = ingest_api.post("/api/v1/tickets", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_tickets" and set(body["errors"]) == {"1", "2"}
    assert body["errors"]["1"]["code"] == "empty_text" and body["errors"]["2"]["code"] == "unknown_team"
    assert Ticket.objects.count() == 0


def test_models_list_and_detail(api, install_version):
    """GET models lists versions newest first; GET models/{id} adds metrics and card."""
    v1 = install_version("v1", state="active", metrics={"int8": {"accuracy": 0.9}})
    v2 = install_version("v2")
    listing = api.get("/api/v1/models")
    detail = api.get(f"/api/v1/models/{v1.pk}")
    assert (listing.status_code, detail.status_code) == (200, 200)
    assert [m["id"] for m in listing.json()] == [v2.pk, v1.pk]
    assert detail.json()["metrics"] == {"int8": {"accuracy": 0.9}}
    assert api.get("/api/v1/models/999").json()["code"] == "not_found"


def test_staff_promote_then_rollback(staff_api, install_version, staff_user):
    """Staff promote v2 (v1 retired), then roll back to v1."""
    v1 = install_version("v1")
    v2 = install_version("v2")
    assert staff_api.post(f"/api/v1/models/{v1.pk}/promote").status_code == 200
    response = staff_api.post(f"/api/v1/models/{v2.pk}/promote")
    assert response.status_code == 200 and response.json()["promoted_by"] == "staff"
    assert ModelVersion.objects.get(pk=v2.pk).state == "active"
    assert ModelVersion.objects.get(pk=v1.pk).state == "retired"
    rollback = staff_api.post("/api/v1/models/rollback")
    assert rollback.status_code == 200 and rollback.json()["id"] == v1.pk
    assert ModelVersion.objects.get(state="active").pk == v1.pk


def test_promote_of_a_broken_artifact_is_409(staff_api, install_version, store):
    """Promoting a version whose files fail verification answers 409 artifact_invalid."""
    version = install_version("v1")
    (store / version.artifact_dir / "tokenizer.json").unlink()
    response = staff_api.post(f"/api/v1/models/{version.pk}/promote")
    assert response.status_code == 409 and response.json()["code"] == "artifact_invalid"
    assert ModelVersion.objects.get().state == "candidate"


def test_health_needs_no_auth(client, router, teams, install_version):
    """GET health answers 200 without a token: no_model first, then ok."""
    assert client.get("/api/v1/health").json()["status"] == "no_model"
    version = install_version("v1", state="active")
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "serving_version": str(version.pk),
        "active_version": str(version.pk),
        "problem": None,
    }


def test_a_token_without_the_ingest_permission_cannot_send_tickets(api, teams):
    """Any valid token routes, but ingesting (labelled tickets train the next model) is refused
    with a clear 403 unless the token's user has finetune.add_ticket; nothing is stored."""
    single = api.post("/api/v1/tickets", {"text": "hi", "team": "bugs"}, format="json")
    bulk = api.post("/api/v1/tickets", {"tickets": [{"text": "x", "team": "bugs"}]}, format="json")
    for response in (single, bulk):
        assert response.status_code == 403
        assert response.json()["code"] == "ingest_not_allowed"
        assert "finetune.add_ticket" in response.json()["detail"]
    assert not Ticket.objects.exists()
    assert api.get("/api/v1/teams").status_code == 200  # the token itself still works


def test_a_20000_character_ticket_routes_and_only_abuse_sizes_are_refused(
    api, router, teams, install_version, settings
):
    """A long e-mail routes (the model reads its window); above MAX_TEXT_CHARS the answer is 413 naming the limit."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    install_version("v1", state="active")
    long_ticket = "my card was charged twice and nobody answers my e-mails. " * 350
    assert 19_000 < len(long_ticket) < 21_000
    routed = api.post("/api/v1/route", {"text": long_ticket}, format="json")
    assert routed.status_code == 200 and routed.json()["model_version"] is not None
    assert routed.json()["reason"] in {"routed", "no_intent", "out_of_scope", "unsupported_language", "low_confidence"}
    refused = api.post("/api/v1/route", {"text": "x" * 100_001}, format="json")
    assert refused.status_code == 413 and refused.json()["code"] == "text_too_long"
    assert "100000" in refused.json()["detail"]
