"""REST API errors: one JSON shape for auth, throttling, validation, size and domain errors."""

from __future__ import annotations

import pytest

from finetune.models import Ticket
from routing.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_no_token_is_401(client, teams):
    """Without credentials route answers 401 not_authenticated with a Token challenge."""
    response = client.post("/api/v1/route", {"text": "card"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated" and response["WWW-Authenticate"] == "Token"


def test_non_staff_cannot_promote(api, install_version):
    """A non-staff token gets 403 on promote and the version stays a candidate."""
    version = install_version("v1")
    response = api.post(f"/api/v1/models/{version.pk}/promote")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert ModelVersion.objects.get().state == "candidate"


def test_user_rate_limit_is_429_with_retry_after(api, teams, settings):
    """Past the per-token rate the API answers 429 throttled with a Retry-After header."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100/min", "user": "2/min"},
    }
    statuses = [api.get("/api/v1/teams").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = api.get("/api/v1/teams")
    assert response.json()["code"] == "throttled" and 0 < int(response["Retry-After"]) <= 60


def test_malformed_json_is_400(ingest_api, teams):
    """A body that is not JSON answers 400 parse_error; nothing written."""
    response = ingest_api.post("/api/v1/tickets", "{text: nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    assert Ticket.objects.count() == 0


def test_oversized_body_is_413(ingest_api, teams):
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 payload_too_large; nothing written."""
    payload = {"tickets": [{"text": "x" * 4000} for _ in range(300)]}
    response = ingest_api.post("/api/v1/tickets", payload, format="json")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert Ticket.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": 5}, "text"),
        ({"texts": "card"}, "texts"),
        ({"texts": ["card", 7]}, "texts"),
        ({"texts": ["card"] * 65}, "texts"),
        ({"texts": []}, "texts"),
        ({"text": "a", "texts": ["b"]}, "non_field_errors"),
        ({}, "non_field_errors"),
    ],
)
def test_route_validation_errors_name_the_field(api, router, teams, install_version, payload, field):
    """Wrong types, 65 texts, empty lists and ambiguous bodies answer 400 invalid naming the field."""
    install_version("v1", state="active")
    response = api.post("/api/v1/route", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["errors"]


def test_route_empty_text_is_400_empty_text(api, router, teams, install_version):
    """Whitespace-only text answers 400 empty_text."""
    install_version("v1", state="active")
    response = api.post("/api/v1/route", {"texts": ["card", "  "]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"code": "empty_text", "detail": "texts[1]: text is empty: send the customer's message."}


def test_ticket_wrong_types_are_400(ingest_api, teams):
    """A non-string text or team answers 400 with field errors; nothing written."""
    response = ingest_api.post("/api/v1/tickets", {"text": ["a"], "team": 3}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"text", "team"}
    assert Ticket.objects.count() == 0


def test_unknown_token_is_401_and_a_valid_one_is_cached(api, client, teams, django_assert_num_queries):
    """A made-up token answers 401; a valid token's second request skips the token lookup."""
    bad = client.get("/api/v1/teams", HTTP_AUTHORIZATION="Token " + "f" * 40)
    assert bad.status_code == 401 and bad.json()["code"] == "authentication_failed"
    assert api.get("/api/v1/teams").status_code == 200
    with django_assert_num_queries(1):  # the team list only
        assert api.get("/api/v1/teams").status_code == 200


def test_throttle_window_slides_and_retry_after_says_when(settings):
    """3/min: a 4th request within the minute is refused with the wait until the oldest slot leaves;
    after it leaves, one more is admitted; state stays a few (slot, count) pairs, not a timestamp each."""
    from types import SimpleNamespace

    from django.core.cache import cache

    from chatbot.core.rest import UserThrottle

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "9/min", "user": "3/min"}}
    caller = SimpleNamespace(user=SimpleNamespace(pk=42, is_authenticated=True))

    def check(at: float) -> UserThrottle:
        throttle = UserThrottle()
        throttle.timer = lambda: at
        throttle.allowed = throttle.allow_request(caller, None)
        return throttle

    assert [check(t).allowed for t in (1000.2, 1000.7, 1030.5)] == [True, True, True]
    refused = check(1040.0)
    assert not refused.allowed and refused.wait() == pytest.approx(1060.0 - 1040.0)  # slot 1000 leaves at 1060
    assert not check(1059.9).allowed
    assert check(1060.0).allowed  # the two at 1000.x left together; one slot is free again
    assert check(1060.1).allowed and not check(1060.2).allowed
    assert len(cache.get(UserThrottle().cache_format % {"scope": "user", "ident": 42})) == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/models/abc"),
        ("post", "/api/v1/models/abc/promote"),
        ("get", "/api/v1/training-runs/abc"),
        ("post", "/api/v1/training-runs/1.5/cancel"),
        ("get", "/api/v1/no-such-endpoint"),
    ],
)
def test_unknown_paths_and_non_integer_ids_are_json_404(staff_api, teams, method, path):
    """A non-integer id or an unknown endpoint under /api/v1/ answers 404 in the JSON error shape."""
    response = getattr(staff_api, method)(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found" and path in response.json()["detail"]
