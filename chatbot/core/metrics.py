"""Prometheus metrics, recorded where the work is done and exposed on GET /metrics.

With ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty directory, before the process starts) every
process — each ``uvicorn --workers`` worker, the training workers, the scheduler — writes its
samples there and ``/metrics`` in any web worker answers for all of them; without it, for its
own process only. Recording is a dictionary lookup and an add (an mmap write in multiprocess
mode): cheap enough for every route request.
"""

from __future__ import annotations

import atexit
import glob
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Route latency is a few milliseconds; a batch or a slow reload check takes longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ROUTE_SECONDS = Histogram(
    "switchboard_route_seconds",
    "Time to answer a route request body (REST: fast path and view), by kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
DECISIONS = Counter(
    "switchboard_routing_decisions_total",
    "Routing answers: source api (each REST prediction) or chat (each conversation decision); "
    "outcome routed, triaged or held_back (no intent yet: the chat waits, REST gets no team).",
    ["source", "outcome", "team", "reason"],
)
CHAT_SOCKETS = Gauge(
    "switchboard_chat_sockets_open",
    "Chat websockets open, by kind (customer, agent).",
    ["kind"],
    multiprocess_mode="livesum",
)
ACK_SECONDS = Histogram(
    "switchboard_chat_ack_seconds",
    "From a chat message frame to its ack (stored and committed), by sender.",
    ["sender"],
    buckets=LATENCY_BUCKETS,
)
MESSAGES_STORED = Counter("switchboard_messages_stored_total", "Chat messages stored, by sender.", ["sender"])
TRAINING_RUNS = Counter("switchboard_training_runs_total", "Training runs finished, by outcome.", ["outcome"])
TRAINING_SECONDS = Histogram(
    "switchboard_training_run_seconds",
    "Training run duration, by outcome.",
    ["outcome"],
    buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
MODEL_VERSION = Gauge(
    "switchboard_model_version",
    "Model version id this process serves (serving) and the database's active one "
    "(active), as each router last saw them; 0 for none.",
    ["state"],
    multiprocess_mode="liveall",
)


def route_observe(*, kind: str, seconds: float, answers: list[dict]) -> None:
    """One REST route answer: its latency and a decision per answer (the response's own dicts)."""
    ROUTE_SECONDS.labels(kind).observe(seconds)
    for answer in answers:
        reason = answer["reason"]
        outcome = "routed" if reason == "routed" else "triaged" if answer["triage"] else "held_back"
        DECISIONS.labels("api", outcome, answer["team"] or "", reason).inc()


def conversation_decision(*, outcome: str, team: str | None, reason: str) -> None:
    """One chat routing decision (``outcome``: routed, triaged or held_back)."""
    DECISIONS.labels("chat", outcome, team or "", reason).inc()


def model_versions_set(*, serving: str | None, active: str | None) -> None:
    MODEL_VERSION.labels("serving").set(int(serving) if serving and serving.isdecimal() else 0)
    MODEL_VERSION.labels("active").set(int(active) if active and active.isdecimal() else 0)


def exposition() -> tuple[bytes, str]:
    """The text exposition and its content type: every process's samples in multiprocess mode, else this process's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _dead_processes_forget(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _dead_processes_forget(directory: str) -> None:
    """Drop the live gauges of processes no longer running (the directory is one host's).

    A uvicorn worker ends by re-raising SIGTERM, and a crash or SIGKILL ends a process too,
    without running any exit hook: without this their open sockets would count for ever.
    """
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = path.rsplit("_", 1)[1].removesuffix(".db")
        if pid.isdecimal() and not _running(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@atexit.register
def _process_exit() -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
