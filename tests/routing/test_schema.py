"""Live responses conform to the OpenAPI schema served at /api/schema/."""

from __future__ import annotations

import jsonschema
import pytest

from tests.openapi import json_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def conforms(api):
    document = api.get("/api/schema/?format=json").json()
    components = json_schema(document["components"])

    def check(response, path: str, method: str) -> None:
        operation = document["paths"][path][method]
        schema = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
        validator = jsonschema.Draft7Validator({"allOf": [json_schema(schema)], "components": components})
        validator.validate(response.json())

    return check


def test_route_responses_match_the_schema(api, conforms, router, teams, install_version):
    """Single and batch route responses validate against the route operation's schema."""
    install_version("v1", state="active")
    conforms(api.post("/api/v1/route", {"text": "card"}, format="json"), "/api/v1/route", "post")
    conforms(api.post("/api/v1/route", {"texts": ["a", "b"]}, format="json"), "/api/v1/route", "post")


def test_read_endpoints_match_the_schema(api, conforms, router, teams, install_version):
    """teams, models, models/{id} and health validate against their schemas."""
    version = install_version("v1", state="active", metrics={"int8": {"accuracy": 0.9}})
    conforms(api.get("/api/v1/teams"), "/api/v1/teams", "get")
    conforms(api.get("/api/v1/models"), "/api/v1/models", "get")
    conforms(api.get(f"/api/v1/models/{version.pk}"), "/api/v1/models/{id}", "get")
    conforms(api.get("/api/v1/health"), "/api/v1/health", "get")


def test_ticket_and_error_responses_match_the_schema(api, ingest_api, conforms, teams):
    """Ticket ingest (single, bulk) and 400 / 404 errors validate against their schemas."""
    conforms(ingest_api.post("/api/v1/tickets", {"text": "hi"}, format="json"), "/api/v1/tickets", "post")
    bulk = ingest_api.post("/api/v1/tickets", {"tickets": [{"text": "x", "team": "bugs"}]}, format="json")
    conforms(bulk, "/api/v1/tickets", "post")
    invalid = ingest_api.post("/api/v1/tickets", {"tickets": [{"text": ""}]}, format="json")
    assert invalid.status_code == 400
    conforms(invalid, "/api/v1/tickets", "post")
    conforms(api.post("/api/v1/route", {"text": 1}, format="json"), "/api/v1/route", "post")
    conforms(api.get("/api/v1/models/999"), "/api/v1/models/{id}", "get")


def test_schema_validation_rejects_a_wrong_shape(api, conforms, teams):
    """The conformance check itself fails on a response that breaks the schema."""
    response = api.get("/api/v1/teams")
    response.json = lambda: [{"slug": 1}]
    with pytest.raises(jsonschema.ValidationError):
        conforms(response, "/api/v1/teams", "get")


@pytest.fixture
def request_schema(api):
    """A validator for an operation's JSON request body, from the served schema."""
    document = api.get("/api/schema/?format=json").json()
    components = json_schema(document["components"])

    def validator(path: str, method: str) -> jsonschema.Draft7Validator:
        schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        return jsonschema.Draft7Validator({"allOf": [json_schema(schema)], "components": components})

    return validator


def test_route_schema_states_exactly_one_non_empty_input(request_schema, teams):
    """The route body schema takes exactly one of text / texts / messages, each text non-blank."""
    route = request_schema("/api/v1/route", "post")
    for body in ({"text": "card"}, {"texts": ["a", "b"]}, {"messages": ["hi", "card refund"]}):
        assert route.is_valid(body), body
    for body in (
        {},
        {"text": "a", "texts": ["b"]},
        {"texts": ["a"], "messages": ["b"]},
        {"text": ""},
        {"text": "   "},
        {"texts": ["ok", " "]},
        {"texts": []},
    ):
        assert not route.is_valid(body), body


def test_training_run_schema_lists_the_config_keys(request_schema, teams):
    """The training-run body schema is an object whose config takes TrainConfig's keys and no other."""
    start = request_schema("/api/v1/training-runs", "post")
    assert start.is_valid({}) and start.is_valid({"config": {"epochs": 3, "method": "lora", "lr": 0.001}})
    for body in (None, [], {"config": {"epochz": 1}}, {"config": {"epochs": "three"}}, {"config": []}):
        assert not start.is_valid(body), body
