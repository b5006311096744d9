"""Real uvicorn server subprocesses sharing the test database, for the multi-process and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.db import connection


def server_command(port: int) -> list[str]:
    """The app server as the README runs it: uvicorn with httptools, uvloop and websockets."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "chatbot.project.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--ws",
        "websockets",
        "--ws-max-size",
        "65536",
        "--no-access-log",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """A DATABASE_URL naming the database this test run uses (SQLite file or PostgreSQL)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {port} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def asgi_servers(log_dir: Path, names: list[str], **env: str) -> Iterator[list[str]]:
    """Run one app server (``server_command``) per name, started together (each takes seconds
    to import the project); yield their http base URLs in order."""
    full_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "chatbot.project.settings",
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    running: list[tuple[subprocess.Popen, int, Path]] = []
    try:
        for name in names:
            port, log = free_port(), Path(log_dir) / f"{name}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    server_command(port),
                    cwd=settings.BASE_DIR,
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running.append((process, port, log))
        for process, port, log in running:
            _wait_for_port(port, process, log)
        yield [f"http://127.0.0.1:{port}" for _, port, _ in running]
    finally:
        for process, _, _ in running:
            process.terminate()
        for process, _, _ in running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def session_cookie_for(user) -> str:
    """A session cookie for ``user``, stored in the shared test database."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"
