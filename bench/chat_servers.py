"""The chat benches' servers: a fresh PostgreSQL database with the demo loaded, a model served as
the active version, a staff agent's session, and two ASGI server processes as the README runs them.

Shared by ``bench/chat_load.py``, ``bench/open_world.py`` and the security probes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Shared by the bench process (which writes the agent's session) and the servers (which read it).
SECRET_KEY = "bench-only-secret-key-" + "x" * 40


def database_create(args) -> str:
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    url = f"{args.postgres}/{args.database}"
    env = {**os.environ, "DATABASE_URL": url}
    for command in (["migrate", "--noinput", "-v", "0"], ["load_demo", "--password", "bench-pass-123"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    return url


def django_setup(database_url: str, model_store: Path) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["MODEL_STORE"] = str(model_store)
    os.environ["SECRET_KEY"] = SECRET_KEY
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.project.settings")
    import django

    django.setup()


def model_activate(artifact: str | None, store: Path) -> str:
    """Serve ``artifact`` as the active version; return a description of what routes."""
    from finetune.ml.artifacts import verify_checksums
    from routing.models import ModelVersion

    if artifact:
        version = ModelVersion.objects.create(artifact_dir=f"pending-{time.time_ns()}", sha256="")
        shutil.copytree(artifact, store / str(version.pk))
        labels = json.loads((store / str(version.pk) / "labels.json").read_text())
        version.artifact_dir, version.sha256 = str(version.pk), verify_checksums(store / str(version.pk))
        version.labels, version.state = labels, ModelVersion.State.ACTIVE
        version.save()
    active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
    if active is None:
        print("No model version is active and no --artifact given: every conversation goes to triage.")
        return "triage (no model)"
    return f"model v{active.pk}"


def agent_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench-agent", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def servers_start(database_url: str, args, store: Path, logs: Path) -> list[tuple[subprocess.Popen, str]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis,
        "MODEL_STORE": str(store),
        # Every simulated customer connects from 127.0.0.1: lift the per-address handshake limit.
        "CHAT_HANDSHAKES_PER_MINUTE": "0",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",
        # One persistent connection per DB thread instead of a new one per query batch.
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    servers = []
    for index in range(2):
        port = 18800 + index + random.randint(0, 900)
        log = (logs / f"server-{index}.log").open("w")
        process = subprocess.Popen(
            server_command(args.server, port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        servers.append((process, f"ws://127.0.0.1:{port}"))
    return servers


# The server drops a websocket frame above this before buffering it (uvicorn's default is 16 MiB);
# the app's own CHAT_MAX_FRAME_BYTES (32 KB) answers anything between with an error frame.
WS_MAX_SIZE = 65536


def server_command(server: str, port: int, application: str = "chatbot.project.asgi:application") -> list[str]:
    binary = str(Path(sys.executable).with_name(server))
    if server == "daphne":
        return [binary, "-b", "127.0.0.1", "-p", str(port), application]
    # As the README's "At scale" runs it (per-message deflate on, uvicorn's default: turning it
    # off made no difference beyond this machine's noise at 500 sockets).
    return [
        binary,
        application,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--ws",
        "websockets",
        "--ws-max-size",
        str(WS_MAX_SIZE),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


async def wait_listening(servers, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    for process, url in servers:
        port = int(url.rsplit(":", 1)[1])
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server on {port} exited with {process.returncode}; see bench/out/server-*.log")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"server on {port} did not start in {timeout:.0f} s")
                await asyncio.sleep(0.3)
