"""Settings switch on environment variables: SQLite/PostgreSQL, in-memory/Redis, deploy checks.

Each case runs Django in a subprocess, because settings are read once per process.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
POSTGRES_TEST_URL = "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"

_DUMP_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"], "debug": settings.DEBUG,
}))
"""


def _run(tmp_path, code: str | None = None, args: list[str] | None = None, **env: str):
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    environ.update(DJANGO_SETTINGS_MODULE="chatbot.project.settings", SWITCHBOARD_VAR=str(tmp_path), **env)
    command = [sys.executable, "-c", code] if code is not None else [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def _settings(tmp_path, **env: str) -> dict:
    result = _run(tmp_path, _DUMP_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_are_sqlite_and_in_memory_layer(tmp_path):
    """With no DATABASE_URL or REDIS_URL the project runs on SQLite and the in-memory layer."""
    values = _settings(tmp_path)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "switchboard.sqlite3")
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["cache"].endswith("LocMemCache")


def test_explicit_sqlite_url(tmp_path):
    """A sqlite:/// DATABASE_URL picks that file."""
    target = tmp_path / "other.sqlite3"
    values = _settings(tmp_path, DATABASE_URL=f"sqlite:///{target}")
    assert values["engine"] == "django.db.backends.sqlite3" and values["name"] == str(target)


def test_postgres_and_redis_urls_switch_backends(tmp_path):
    """DATABASE_URL=postgres://... and REDIS_URL select PostgreSQL and channels_redis."""
    values = _settings(tmp_path, DATABASE_URL=POSTGRES_URL, REDIS_URL=REDIS_URL)
    assert values["engine"] == "django.db.backends.postgresql"
    assert (values["name"], values["host"]) == ("postgres", "127.0.0.1")
    assert values["layer"] == "chatbot.layers.PipelinedPubSubChannelLayer"
    assert values["cache"].endswith("RedisCache")


@pytest.mark.scale("postgres")
def test_really_connects_to_postgresql(tmp_path):
    """With DATABASE_URL pointing at the 'test' database, Django runs a query on PostgreSQL."""
    code = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT current_database(), 40 + 2')\n"
        "    print(connection.vendor, *cursor.fetchone())\n"
    )
    result = _run(tmp_path, code, DATABASE_URL=POSTGRES_TEST_URL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["postgresql", "test", "42"]


@pytest.mark.scale("redis")
def test_really_round_trips_through_redis_channel_layer(tmp_path):
    """With REDIS_URL set, a message sent on the channel layer comes back through Redis."""
    code = (
        "import asyncio, django; django.setup()\n"
        "from channels.layers import get_channel_layer\n"
        "async def main():\n"
        "    layer = get_channel_layer()\n"
        "    name = await layer.new_channel()\n"
        "    await layer.send(name, {'type': 'ping', 'n': 7})\n"
        "    print(type(layer).__name__, (await layer.receive(name))['n'])\n"
        "asyncio.run(main())\n"
    )
    result = _run(tmp_path, code, REDIS_URL=REDIS_URL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["PipelinedPubSubChannelLayer", "7"]


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    """manage.py check --deploy reports nothing with DEBUG off, a long key and a real host."""
    result = _run(
        tmp_path,
        args=["check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_secret_key_refuses_to_start(tmp_path):
    """Turning DEBUG off without a SECRET_KEY fails loudly instead of using the dev key."""
    result = _run(tmp_path, _DUMP_SETTINGS, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
