"""Route metrics are recorded in the route body: the fast path and the DRF view count alike."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from routing.fast_route import RouteFastPath
from tests.routing.test_fast_route import CARD, CountingApp, call, token, view_calls  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def decisions(**labels: str) -> float:
    return sample("switchboard_routing_decisions_total", source="api", **labels)


async def test_fast_path_and_view_record_the_same(token, router, teams, install_version, view_calls):  # noqa: F811
    """One route request answered by the view and one by the fast path each add a latency sample and a
    decision labelled with the answer's outcome, team and reason."""
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    fast = RouteFastPath(inner)
    answer = json.loads((await call(inner, CARD, token=token))[2])  # also caches the token
    labels = {
        "outcome": "routed" if answer["reason"] == "routed" else "triaged" if answer["triage"] else "held_back",
        "team": answer["team"] or "",
        "reason": answer["reason"],
    }

    def counts() -> tuple[float, float]:
        return sample("switchboard_route_seconds_count", kind="text"), decisions(**labels)

    before = counts()
    del view_calls[:]
    assert (await call(inner, CARD, token=token))[0] == 200 and view_calls == ["/api/v1/route"]
    after_view = counts()
    assert (await call(fast, CARD, token=token))[0] == 200 and view_calls == ["/api/v1/route"]
    after_fast = counts()
    assert after_view == (before[0] + 1, before[1] + 1) and after_fast == (before[0] + 2, before[1] + 2)


async def test_no_model_answers_count_as_triaged(token, router, teams, view_calls):  # noqa: F811
    """Without a model each text of a batch counts as triaged with reason no_model."""
    inner = CountingApp()
    fast = RouteFastPath(inner)
    await call(inner, CARD, token=token)
    before = decisions(outcome="triaged", team="", reason="no_model")
    status, _, _ = await call(fast, b'{"texts": ["card refund", "app crash", "invoice"]}', token=token)
    assert status == 200 and decisions(outcome="triaged", team="", reason="no_model") == before + 3


def test_router_reports_its_serving_and_active_versions(router, teams, install_version):
    """After a reload check the router's gauge holds the version it serves and the active one."""
    version = install_version("v1", state="active")
    router.state()
    assert sample("switchboard_model_version", state="serving") == version.pk
    assert sample("switchboard_model_version", state="active") == version.pk
