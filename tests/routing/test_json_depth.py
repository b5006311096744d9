"""Deeply nested JSON bodies are refused with 400 too_deep on every endpoint, never a 500."""

from __future__ import annotations

import pytest

from chatbot.core.errors import SwitchboardError
from chatbot.core.jsonsafe import MAX_DEPTH, json_depth, json_loads_guarded
from finetune.models import Ticket, TrainingRun

pytestmark = pytest.mark.django_db

NESTED_ARRAYS = "[" * 50_000 + "]" * 50_000  # 100 KB: RecursionError in json.loads
NESTED_OBJECTS = '{"a":' * 12_000 + "1" + "}" * 12_000
JUST_PAST_LIMIT = '{"text": "card", "extra": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}"


def _post(client, path: str, body: str):
    return client.post(path, body, content_type="application/json")


def _assert_too_deep(response) -> None:
    assert response.status_code == 400, response.content[:200]
    body = response.json()
    assert body["code"] == "too_deep" and f"{MAX_DEPTH} levels" in body["detail"]


@pytest.mark.parametrize("body", [NESTED_ARRAYS, NESTED_OBJECTS, JUST_PAST_LIMIT], ids=["arrays", "objects", "33"])
def test_route_refuses_nested_json_for_every_caller(client, api, staff_api, teams, body):
    """/api/v1/route: anonymous 401 (authentication comes first); plain and staff tokens 400 too_deep."""
    assert _post(client, "/api/v1/route", body).status_code == 401
    _assert_too_deep(_post(api, "/api/v1/route", body))
    _assert_too_deep(_post(staff_api, "/api/v1/route", body))


@pytest.mark.parametrize("body", [NESTED_ARRAYS, NESTED_OBJECTS], ids=["arrays", "objects"])
def test_tickets_refuse_nested_json_for_every_caller(client, api, staff_api, teams, body):
    """/api/v1/tickets: anonymous 401, a token without the ingest permission 403, staff 400; nothing stored."""
    assert _post(client, "/api/v1/tickets", body).status_code == 401
    assert _post(api, "/api/v1/tickets", body).status_code == 403
    _assert_too_deep(_post(staff_api, "/api/v1/tickets", body))
    assert Ticket.objects.count() == 0


def test_tickets_refuse_nested_json_for_an_integration(ingest_api, teams):
    """A token with the ingest permission (the caller that gets to the parser) gets 400 too_deep."""
    _assert_too_deep(_post(ingest_api, "/api/v1/tickets", NESTED_ARRAYS))
    assert Ticket.objects.count() == 0


@pytest.mark.parametrize("body", [NESTED_ARRAYS, NESTED_OBJECTS], ids=["arrays", "objects"])
def test_training_runs_refuse_nested_json_for_every_caller(client, api, staff_api, teams, body):
    """/api/v1/training-runs: anonymous 401, non-staff 403, staff 400 too_deep; no run queued."""
    assert _post(client, "/api/v1/training-runs", body).status_code == 401
    assert _post(api, "/api/v1/training-runs", body).status_code == 403
    _assert_too_deep(_post(staff_api, "/api/v1/training-runs", body))
    assert TrainingRun.objects.count() == 0


def test_depth_ignores_brackets_inside_strings():
    """Brackets in string values (escaped quotes too) are text, not nesting."""
    text = '{"a": "[[[[[[ \\" [[[[", "b": [[1]]}'
    assert json_depth(text) == 3
    assert json_loads_guarded('{"text": "' + "[" * 100 + '"}') == {"text": "[" * 100}


def test_guarded_loader_never_raises_recursion_error():
    """Too deep is too_deep, invalid is bad_json; both are the domain error."""
    with pytest.raises(SwitchboardError) as deep:
        json_loads_guarded(NESTED_ARRAYS)
    assert deep.value.code == "too_deep"
    with pytest.raises(SwitchboardError) as bad:
        json_loads_guarded("[" * 10 + "nope")
    assert bad.value.code == "bad_json"
    assert json_loads_guarded("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
