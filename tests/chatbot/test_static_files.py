"""Static files in production: ServeStatic over collectstatic's output, in front of Django."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.handlers.asgi import ASGIHandler
from django.core.management import call_command

from chatbot.project.static_files import static_files_app
from tests.routing.test_fast_route import call

pytestmark = pytest.mark.django_db

MANIFEST = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


@pytest.fixture
def production_static(settings, tmp_path):
    """DEBUG off, the manifest storage, and collectstatic run into a fresh STATIC_ROOT (this project's apps only)."""
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = MANIFEST
    call_command(
        "collectstatic",
        interactive=False,
        verbosity=0,
        ignore_patterns=["admin", "rest_framework", "drf_spectacular_sidecar"],
    )
    return static_files_app(ASGIHandler())


def _headers(response) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in response[1]}


async def test_files_carry_nosniff_and_cache_headers(production_static):
    """The widget's plain URL is cached briefly, its hashed name for a year; both say nosniff."""
    plain = await call(production_static, b"", token=None, method="GET", path="/static/chatbot/widget.js")
    hashed_url = "/static/" + staticfiles_storage.stored_name("chatbot/widget.js")
    hashed = await call(production_static, b"", token=None, method="GET", path=hashed_url)
    assert plain[0] == hashed[0] == 200 and plain[2] == hashed[2] and b"data-server" in plain[2]
    assert hashed_url != "/static/chatbot/widget.js"
    for response in (plain, hashed):
        assert _headers(response)["x-content-type-options"] == "nosniff"
        assert "javascript" in _headers(response)["content-type"]
    assert _headers(plain)["cache-control"] == "max-age=60, public"
    assert "immutable" in _headers(hashed)["cache-control"] and "max-age=315360000" in _headers(hashed)["cache-control"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2fsettings.py",
        "/static/../../chatbot/settings.py",
        "/static/chatbot/../../../chatbot/settings.py",
        "/static/chatbot/missing.js",
    ],
)
async def test_paths_outside_the_collected_files_are_404(production_static, path):
    """A path that is not one of the collected files, traversal included, is Django's 404, never the file or a 500."""
    status, _, content = await call(production_static, b"", token=None, method="GET", path=path)
    assert status == 404 and b"SECRET_KEY" not in content
