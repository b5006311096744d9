"""Redoc at /api/redoc/: served offline (drf-spectacular-sidecar) under the site's CSP.

The browser half (it renders, its search worker runs, no violation) is in test_browser.py.
"""

from __future__ import annotations

import re

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.management import call_command

from chatbot.project.static_files import static_files_app
from tests.chatbot.test_csp import INLINE_SCRIPT
from tests.chatbot.test_static_files import MANIFEST, _headers
from tests.routing.test_fast_route import call

pytestmark = pytest.mark.django_db

# Every URL the page itself names: script and link sources, and the spec Redoc fetches.
REFERENCES = re.compile(r'\b(?:src|href|spec-url)="([^"]*)"')


@pytest.fixture
def production_app(settings, tmp_path):
    """DEBUG off, the manifest storage, and collectstatic run (the admin's and DRF's files left out)."""
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = MANIFEST
    call_command("collectstatic", interactive=False, verbosity=0, ignore_patterns=["admin", "rest_framework"])
    return static_files_app(ASGIHandler())


def _policy(headers: dict[str, str]) -> dict[str, list[str]]:
    directives = (part.split() for part in headers["content-security-policy"].split(";"))
    return {name: values for name, *values in directives}


async def test_redoc_page_and_everything_it_names_are_served_from_this_origin(production_app):
    """The page answers 200 with the strict script policy plus blob: workers, holds no inline script,
    names only same-origin URLs (no fonts or bundle from a CDN), and each of them answers 200."""
    status, raw_headers, page = await call(production_app, b"", token=None, method="GET", path="/api/redoc/")
    assert status == 200, page[:500]
    policy = _policy(_headers((status, raw_headers)))
    assert policy["script-src"] == ["'self'"] and policy["img-src"] == ["'self'", "data:"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert not INLINE_SCRIPT.search(page)
    html = page.decode()
    assert "<title>Switchboard API</title>" in html and "<redoc spec-url=" in html
    urls = REFERENCES.findall(html)
    assert any("redoc.standalone." in url for url in urls) and any("redoc_offline." in url for url in urls)
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "googleapis" not in html and "https://" not in html
    for url in urls:
        path, _, query = url.partition("?")
        status, raw_headers, body = await call(
            production_app, b"", token=None, method="GET", path=path, query=query.encode()
        )
        assert status == 200 and body, url
        if path.endswith(".js"):
            assert "javascript" in _headers((status, raw_headers))["content-type"], url


def test_only_the_redoc_page_allows_blob_workers(client):
    """Swagger UI and the rest keep the site-wide policy: no worker-src, so workers fall back to script-src 'self'."""
    assert "blob:" in client.get("/api/redoc/")["Content-Security-Policy"]
    for page in ("/api/docs/", "/", "/api/schema/"):
        header = client.get(page)["Content-Security-Policy"]
        assert "worker-src" not in header and "blob:" not in header, page
