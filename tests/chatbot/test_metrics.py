"""Metrics: the token-protected /metrics page, the chat's and training's samples, multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from rest_framework.authtoken.models import Token

from finetune.ml.errors import PipelineError
from finetune.models import TrainingRun
from finetune.training import training_run_execute
from finetune.training_queue import training_run_start
from tests.chatbot.conftest import agent_socket, customer_socket, receive_type
from tests.finetune.test_training_support import FAST_CONFIG, labelled, store, tiny_base  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent.parent


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Bearer ", 401),
        ("Token plain", 401),
        ("Token staff", 200),
        ("Bearer metrics-s3cret", 200),
    ],
)
def test_metrics_page_needs_the_token_or_staff(settings, staff_user, plain_user, header, status):
    """GET /metrics answers the exposition for METRICS_TOKEN or a staff API token, 401 for anything else."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "METRICS_TOKEN": "metrics-s3cret"}
    keys = {"staff": Token.objects.create(user=staff_user).key, "plain": Token.objects.create(user=plain_user).key}
    if header and header.startswith("Token "):
        header = f"Token {keys[header.split()[1]]}"
    response = Client().get("/metrics", **({"HTTP_AUTHORIZATION": header} if header else {}))
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"].startswith("text/plain") and b"switchboard_route_seconds" in response.content
    else:
        assert response.json()["code"] == "not_authenticated" and b"switchboard_" not in response.content


@pytest.mark.django_db
def test_no_metrics_token_means_staff_only(settings):
    """With METRICS_TOKEN unset an empty Bearer token is no key."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "METRICS_TOKEN": ""}
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db(transaction=True)
async def test_chat_records_sockets_acks_messages_and_decisions(teams, agent_user, keyword_router):
    """A customer socket and an agent socket count as open until they close; a message adds an ack
    sample and a stored message; its routing adds a chat decision for the team."""
    before = {
        "customers": sample("switchboard_chat_sockets_open", kind="customer"),
        "agents": sample("switchboard_chat_sockets_open", kind="agent"),
        "acks": sample("switchboard_chat_ack_seconds_count", sender="customer"),
        "stored": sample("switchboard_messages_stored_total", sender="customer"),
        "routed": sample(
            "switchboard_routing_decisions_total", source="chat", outcome="routed", team="billing", reason="routed"
        ),
    }
    agent, _ = await agent_socket(agent_user)
    socket, _ = await customer_socket()
    assert sample("switchboard_chat_sockets_open", kind="customer") == before["customers"] + 1
    assert sample("switchboard_chat_sockets_open", kind="agent") == before["agents"] + 1
    await socket.send_json_to({"type": "message", "text": "Where is my refund?", "client_id": "c-1"})
    await receive_type(socket, "ack")
    await receive_type(socket, "routed")
    await socket.send_json_to({"type": "message", "text": "Where is my refund?", "client_id": "c-1"})  # a resend
    await receive_type(socket, "ack")
    assert sample("switchboard_chat_ack_seconds_count", sender="customer") == before["acks"] + 2
    assert sample("switchboard_messages_stored_total", sender="customer") == before["stored"] + 1
    assert (
        sample("switchboard_routing_decisions_total", source="chat", outcome="routed", team="billing", reason="routed")
        == before["routed"] + 1
    )
    await socket.disconnect()
    await agent.disconnect()
    assert sample("switchboard_chat_sockets_open", kind="customer") == before["customers"]
    assert sample("switchboard_chat_sockets_open", kind="agent") == before["agents"]


@pytest.mark.django_db
def test_a_training_run_counts_by_outcome_with_its_duration(staff_user, labelled, monkeypatch):  # noqa: F811
    """A run that fails adds one failed run and one duration sample."""

    def refuse(**kwargs):
        raise PipelineError("no room on the device")

    monkeypatch.setattr("finetune.ml.pipeline.run_pipeline", refuse)
    failed = sample("switchboard_training_runs_total", outcome="failed")
    durations = sample("switchboard_training_run_seconds_count", outcome="failed")
    run = training_run_execute(run_id=training_run_start(user=staff_user, config=FAST_CONFIG, enqueue=False).pk)
    assert run.status == TrainingRun.Status.FAILED
    assert sample("switchboard_training_runs_total", outcome="failed") == failed + 1
    assert sample("switchboard_training_run_seconds_count", outcome="failed") == durations + 1


_RECORD = """
import sys
from chatbot.core import metrics
metrics.CHAT_SOCKETS.labels("customer").inc(int(sys.argv[1]))
metrics.MESSAGES_STORED.labels("customer").inc(int(sys.argv[1]))
if sys.argv[2] == "stays":
    print("up", flush=True); sys.stdin.read()
"""
_EXPOSE = "from chatbot.core import metrics; print(metrics.exposition()[0].decode())"


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR every process writes there and the exposition sums them; a process
    that is gone (killed without any exit hook, as a uvicorn worker ends) no longer counts in the
    sockets gauge, while its counters stay."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-c", _RECORD]
    staying, killed = (
        subprocess.Popen([*run, n, "stays"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for n in ("3", "2")
    )
    try:
        assert staying.stdout.readline().strip() == killed.stdout.readline().strip() == "up"
        killed.kill()
        killed.wait(timeout=60)
        text = subprocess.run(
            [sys.executable, "-c", _EXPOSE], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    finally:
        staying.communicate("", timeout=60)
    assert 'switchboard_messages_stored_total{sender="customer"} 5.0' in text
    assert 'switchboard_chat_sockets_open{kind="customer"} 3.0' in text
