"""Content-Security-Policy: on every page, strict for scripts, and no page has an inline script."""

from __future__ import annotations

import re

import pytest
from csp.middleware import CSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from chatbot.project.csp import CachedCSPMiddleware
from finetune.models import TrainingRun

pytestmark = pytest.mark.django_db

# A <script> element without a src: inline code (JSON data blocks, which never run, aside).
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
ANONYMOUS = ["/", "/agent/login/", "/admin/login/"]
STAFF = [
    "/api/docs/",
    "/api/redoc/",
    "/api/v1/teams",
    "/admin/",
    "/admin/finetune/ticket/",
    "/admin/finetune/label-next/",
    "/admin/auth/user/add/",
    "run",
]


@pytest.mark.parametrize("page", ANONYMOUS + STAFF)
def test_every_page_has_a_strict_policy_and_no_inline_script(client, admin_client, teams, page):
    """Each page (the demo, logins, admin, label next, a training run, Swagger UI, Redoc, the browsable API)
    carries script-src 'self' and holds no inline <script>."""
    if page == "run":
        page = f"/admin/finetune/trainingrun/{TrainingRun.objects.create().pk}/change/"
    response = (client if page in ANONYMOUS else admin_client).get(page, HTTP_ACCEPT="text/html")
    assert response.status_code == 200, page
    directives = response["Content-Security-Policy"].split("; ")
    assert "script-src 'self'" in directives and "object-src 'none'" in directives and "base-uri 'none'" in directives
    assert not INLINE_SCRIPT.search(response.content), INLINE_SCRIPT.search(response.content).group()


def test_the_cached_header_is_django_csps_own(settings):
    """The header built once equals the one django-csp builds per response; changed settings rebuild it."""
    factory = RequestFactory()

    def header(middleware_class) -> str:
        middleware = middleware_class(lambda request: HttpResponse())
        request = factory.get("/")
        middleware.process_request(request)
        return middleware.process_response(request, HttpResponse())["Content-Security-Policy"]

    assert header(CachedCSPMiddleware) == header(CSPMiddleware)
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert header(CachedCSPMiddleware) == header(CSPMiddleware) == "default-src 'none'"
