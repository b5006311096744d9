"""The route fast path answers byte for byte as Django and the DRF view would, with the real middleware chain."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from asgiref.sync import markcoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from rest_framework.authtoken.models import Token

from chatbot.core.rest import SlottedRateThrottle
from routing.apis import RouteApi
from routing.fast_route import RouteFastPath

pytestmark = pytest.mark.django_db(transaction=True)
THIS_MODULE = "tests.routing.test_fast_route"


class CountingApp:
    """The app behind the fast path: Django's ASGI handler, built with the test's settings, counting its calls."""

    def __init__(self):
        self.handler = ASGIHandler()
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.handler(scope, receive, send)


class StampMiddleware:
    """A plain sync middleware that sets a header, as CSP or request-id middlewares do."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Stamp"] = f"stamped {request.resolver_match.view_name if request.resolver_match else ''}"
        return response


class AsyncOnlyMiddleware:
    """A middleware that cannot run synchronously."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = await self.get_response(request)
        response["X-Async-Only"] = "1"
        return response


async def call(
    app,
    body: bytes,
    *,
    token: str | None,
    method: str = "POST",
    content_type: str = "application/json",
    path: str = "/api/v1/route",
    host: str = "testserver",
    query: bytes = b"",
    scheme: str = "http",
    extra_headers: tuple = (),
    request_id: bytes | None = b"req-fixed-1",
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request; it carries a fixed X-Request-ID (a proxy's), so two answers can compare byte for byte."""
    headers = [
        (b"host", host.encode()),
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    if token is not None:
        headers.append((b"authorization", f"Token {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    messages = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the response is sent

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start, content = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], list(start["headers"]), content


@pytest.fixture
def token(plain_user) -> str:
    return Token.objects.create(user=plain_user).key


@pytest.fixture
def view_calls(monkeypatch) -> list:
    """One entry per RouteApi.dispatch: the requests the real view answered."""
    calls, dispatch = [], RouteApi.dispatch

    def counted(self, request, *args, **kwargs):
        calls.append(request.path)
        return dispatch(self, request, *args, **kwargs)

    monkeypatch.setattr(RouteApi, "dispatch", counted)
    return calls


@pytest.fixture
def frozen_throttle_clock(monkeypatch):
    """A fixed clock for the throttles, so two 429s carry the same Retry-After."""
    monkeypatch.setattr(SlottedRateThrottle, "timer", lambda self: 1_800_000_000.0)


CARD = json.dumps({"text": "my invoice payment was charged twice"}).encode()
# (request, status, whether RouteApi's dispatch runs: the fast path answers the common case without it)
MATRIX = {
    "json": ({"body": CARD}, 200, False),
    "batch": ({"body": json.dumps({"texts": ["card refund", "app crash"]}).encode()}, 200, False),
    "accept json": ({"body": CARD, "extra_headers": ((b"accept", b"application/json"),)}, 200, False),
    "accept json indent": ({"body": CARD, "extra_headers": ((b"accept", b"application/json; indent=2"),)}, 200, False),
    "format=json": ({"body": CARD, "query": b"format=json"}, 200, False),
    "accept xml": ({"body": CARD, "extra_headers": ((b"accept", b"application/xml"),)}, 406, True),
    "bad json": ({"body": b'{"text": "card", '}, 400, True),
    "nested too deep": ({"body": b"[" * 20_000 + b"]" * 20_000}, 400, True),
    "too deep inside": ({"body": b'{"text": "card", "extra": ' + b"[" * 40 + b"]" * 40 + b"}"}, 400, True),
    "conversation": ({"body": json.dumps({"messages": ["hi", "card refund"]}).encode()}, 200, False),
    "blank text": ({"body": json.dumps({"text": "   "}).encode()}, 400, False),
    "validation error": ({"body": b'{"text": 5}'}, 400, True),
    "no token": ({"body": CARD, "token": None}, 401, True),
    "unknown token": ({"body": CARD, "token": "0" * 40}, 401, True),
    "text/plain": ({"body": CARD, "content_type": "text/plain"}, 415, True),
    "other host": ({"body": CARD, "host": "evil.example.com"}, 400, False),
    "too large": ({"body": json.dumps({"texts": ["x" * 4000] * 300}).encode()}, 413, True),
    "text over the abuse limit": ({"body": json.dumps({"text": "x" * 100_001}).encode()}, 413, False),
}


@pytest.mark.parametrize("case", list(MATRIX))
async def test_fast_path_is_byte_for_byte_the_view(token, router, teams, install_version, view_calls, case):
    """Status, every header (in order) and the body equal Django's and the view's; the common case skips RouteApi."""
    await sync_to_async(install_version)("v1", state="active")
    request, status, view_runs = MATRIX[case]
    inner = CountingApp()
    fast = RouteFastPath(inner)
    await call(inner, CARD, token=token)  # verifies and caches the token
    kwargs = {"token": token, **request}
    by_view = await call(inner, **kwargs)
    del view_calls[:]
    by_fast_path = await call(fast, **kwargs)
    assert by_fast_path == by_view and by_view[0] == status
    assert inner.calls == 2, "the fast path handed a route request to the wrapped app"
    assert view_calls == (["/api/v1/route"] if view_runs else [])


async def test_browsable_api_for_html_clients(token, router, teams, install_version, view_calls):
    """Accept: text/html gets DRF's browsable page from the view, not the fast JSON (CSRF tokens aside)."""
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    fast = RouteFastPath(inner)
    html = ((b"accept", b"text/html"),)
    by_view = await call(inner, CARD, token=token, extra_headers=html)
    by_fast_path = await call(fast, CARD, token=token, extra_headers=html)
    assert masked(by_fast_path) == masked(by_view) and by_view[0] == 200
    assert (b"Content-Type", b"text/html; charset=utf-8") in by_view[1]
    assert view_calls == ["/api/v1/route", "/api/v1/route"]


def masked(response: tuple[int, list, bytes]) -> tuple[int, list, bytes]:
    """The response with its per-request random CSRF secrets and the cookie's clock-dependent expiry replaced."""
    random_token = re.compile(rb"[A-Za-z0-9]{32,64}")
    expiry = re.compile(rb"expires=[^;]+")

    def header(value: bytes) -> bytes:
        return expiry.sub(b"expires=*", random_token.sub(b"*", value))

    return response[0], [(k, header(v)) for k, v in response[1]], random_token.sub(b"*", response[2])


@pytest.mark.parametrize(
    ("setting", "scheme", "status"),
    [
        ({"SECURE_SSL_REDIRECT": True}, "http", 301),
        ({"SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_PRELOAD": True}, "https", 200),
    ],
)
async def test_security_settings_apply_as_in_django(
    token, router, teams, install_version, settings, setting, scheme, status
):
    """HTTPS redirects and HSTS come from SecurityMiddleware itself, on both paths."""
    await sync_to_async(install_version)("v1", state="active")
    for name, value in setting.items():
        setattr(settings, name, value)
    inner = CountingApp()
    fast = RouteFastPath(inner)
    await call(inner, CARD, token=token, scheme="https")
    by_view = await call(inner, CARD, token=token, scheme=scheme)
    assert await call(fast, CARD, token=token, scheme=scheme) == by_view and by_view[0] == status


async def test_no_model_is_the_views_no_model_answer(token, router, teams, view_calls):
    """Without a model the fast path answers the view's no_model answer itself (200, no team)."""
    inner = CountingApp()
    fast = RouteFastPath(inner)
    await call(inner, CARD, token=token)
    by_view = await call(inner, CARD, token=token)
    del view_calls[:]
    assert await call(fast, CARD, token=token) == by_view and view_calls == []
    assert by_view[0] == 200 and json.loads(by_view[2])["reason"] == "no_model"


async def test_throttled_like_the_view(token, router, teams, install_version, settings, frozen_throttle_clock):
    """Requests answered by the fast path use up the token's rate; past it both answer the same 429 + Retry-After."""
    rates = {"anon": "100/min", "user": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    fast = RouteFastPath(inner)
    statuses = [(await call(app, CARD, token=token))[0] for app in (inner, fast, fast)]
    by_fast_path, by_view = await call(fast, CARD, token=token), await call(inner, CARD, token=token)
    assert statuses == [200, 200, 200] and by_fast_path == by_view and by_view[0] == 429
    assert json.loads(by_view[2])["code"] == "throttled" and (b"Retry-After", b"60") in by_view[1]


async def test_other_methods_and_paths_go_to_the_wrapped_app(token, router, teams):
    """Only POST /api/v1/route is the fast path's; the rest reaches the wrapped app untouched."""
    inner = CountingApp()
    fast = RouteFastPath(inner)
    assert (await call(fast, CARD, token=token, method="PUT"))[0] == 405
    assert (await call(fast, b"", token=token, method="GET", path="/api/v1/health"))[0] == 200
    assert inner.calls == 2


async def test_an_added_middleware_runs_on_the_fast_path(
    token, router, teams, install_version, settings, view_calls, caplog
):
    """A middleware added to settings.MIDDLEWARE shapes the fast path's answer too, and the fast path stays on."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{THIS_MODULE}.StampMiddleware"]
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    with caplog.at_level(logging.INFO, logger="routing.fast_route"):
        fast = RouteFastPath(inner)
    await call(inner, CARD, token=token)
    by_view = await call(inner, CARD, token=token)
    del view_calls[:]
    by_fast_path = await call(fast, CARD, token=token)
    assert (b"X-Stamp", b"stamped route") in by_fast_path[1] and by_fast_path == by_view
    assert view_calls == [], "the fast path turned itself off or handed the request to the view"
    [line] = [r for r in caplog.records if r.name == "routing.fast_route"]
    assert line.levelno == logging.INFO and f"the {len(settings.MIDDLEWARE)} middlewares" in line.getMessage()


async def test_an_async_only_middleware_turns_it_off_loudly(token, router, teams, install_version, settings, caplog):
    """A middleware that cannot run synchronously: one WARNING at start-up naming it; Django answers everything."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{THIS_MODULE}.AsyncOnlyMiddleware"]
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    with caplog.at_level(logging.INFO, logger="routing.fast_route"):
        fast = RouteFastPath(inner)
    [line] = [r for r in caplog.records if r.name == "routing.fast_route"]
    assert line.levelno == logging.WARNING and "OFF" in line.getMessage() and "AsyncOnlyMiddleware" in line.getMessage()
    status, headers, content = await call(fast, CARD, token=token)
    assert inner.calls == 1 and status == 200 and (b"X-Async-Only", b"1") in headers
    assert json.loads(content)["reason"] == "routed", content


class LoggingRouter:
    """The process router, logging one line per prediction (as a failing reload check would)."""

    def __init__(self, router):
        self.router = router

    def predict(self, texts):
        logging.getLogger("routing.router").warning("predicting %d", len(texts))
        return self.router.predict(texts)


@pytest.mark.parametrize("given", [b"edge-42", None, b"bad id"])
async def test_request_ids_as_the_view_gives_them(
    token, router, teams, install_version, view_calls, monkeypatch, caplog, given
):
    """The fast path returns the proxy's X-Request-ID or a new one exactly where the view does, and its log
    lines during the request carry that id."""
    from chatbot.core.logs import ContextFilter

    await sync_to_async(install_version)("v1", state="active")
    monkeypatch.setattr("routing.fast_route.get_router", lambda: LoggingRouter(router))
    inner = CountingApp()
    fast = RouteFastPath(inner)
    await call(inner, CARD, token=token)
    by_view = await call(inner, CARD, token=token, request_id=given)
    del view_calls[:]
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO, logger="routing.router"):
        by_fast_path = await call(fast, CARD, token=token, request_id=given)
    ids = [dict(response[1])[b"X-Request-ID"] for response in (by_view, by_fast_path)]
    generated = re.compile(rb"[0-9a-f]{32}")
    if given == b"edge-42":
        assert ids == [given, given] and by_fast_path == by_view
    else:
        assert all(generated.fullmatch(i) for i in ids) and ids[0] != ids[1]
        assert masked(by_fast_path) == masked(by_view)
    assert view_calls == [] and by_view[0] == 200
    [line] = [r for r in caplog.records if r.getMessage() == "predicting 1"]
    assert line.request_id == ids[1].decode()


async def test_csp_and_login_throttle_keep_the_fast_path_on_and_identical(
    token, router, teams, install_version, view_calls, caplog
):
    """With CSP and django-axes in MIDDLEWARE, and the production static server in front, the fast path
    is on (said at start-up), answers the common case itself, and its headers (CSP included) are the view's."""
    from django.conf import settings

    from chatbot.project.static_files import static_files_app

    assert {"chatbot.project.csp.CachedCSPMiddleware", "axes.middleware.AxesMiddleware"} <= set(settings.MIDDLEWARE)
    await sync_to_async(install_version)("v1", state="active")
    inner = CountingApp()
    with caplog.at_level(logging.INFO, logger="routing.fast_route"):
        fast = RouteFastPath(static_files_app(inner))
    [line] = [r for r in caplog.records if r.name == "routing.fast_route"]
    assert line.levelno == logging.INFO and "route fast path on" in line.getMessage()
    await call(inner, CARD, token=token)
    del view_calls[:]
    for request in ({"body": CARD}, {"body": b'{"text": 5}'}, {"body": CARD, "token": None}):
        by_view = await call(inner, **{"token": token, **request})
        assert await call(fast, **{"token": token, **request}) == by_view
        policy = dict(by_view[1])[b"Content-Security-Policy"].decode().split("; ")
        assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert len(view_calls) == 3 + 2  # by the view: all three; by the fast path: the invalid and the anonymous one
