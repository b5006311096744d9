"""The route fast path answers exactly as the DRF view would, and hands the view everything else."""

from __future__ import annotations

import asyncio
import json

import pytest
from rest_framework.authtoken.models import Token

from chatbot.asgi import django_asgi_app
from routing.fast_route import RouteFastPath

pytestmark = pytest.mark.django_db(transaction=True)


class CountingApp:
    """The app behind the fast path (Django), counting the requests handed to it."""

    def __init__(self):
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await django_asgi_app(scope, receive, send)


async def call(app, body: bytes, *, token: str | None, method: str = "POST", content_type: str = "application/json",
               path: str = "/api/v1/route", host: str = "testserver") -> tuple[int, dict[str, str], bytes]:
    headers = [(b"host", host.encode()), (b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    if token is not None:
        headers.append((b"authorization", f"Token {token}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("testserver", 80)}
    messages = [{"type": "http.request", "body": body[:10], "more_body": True},
                {"type": "http.request", "body": body[10:], "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the response is sent

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start, content = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


@pytest.fixture
def token(plain_user) -> str:
    return Token.objects.create(user=plain_user).key


@pytest.fixture
def apps():
    inner = CountingApp()
    return inner, RouteFastPath(inner)


@pytest.mark.parametrize("payload", [{"text": "my card was charged twice"}, {"texts": ["card refund", "app crash"]},
                                     {"text": "   "}])
async def test_fast_path_answers_like_the_view(apps, token, router, teams, install_version, payload):
    """Once the token is verified, the fast path gives the view's status, body and headers without calling it."""
    await install_version_async(install_version)
    inner, fast = apps
    body = json.dumps(payload).encode()
    by_view = await call(inner, body, token=token)  # verifies and caches the token
    assert inner.calls == 1
    by_fast_path = await call(fast, body, token=token)
    assert inner.calls == 1, "the fast path handed an ordinary request to Django"
    assert by_fast_path == by_view
    assert by_view[0] == (400 if payload == {"text": "   "} else 200)


async def test_no_model_is_the_views_no_model_answer(apps, token, router, teams):
    """Without a model the fast path answers what the view answers: 200, reason no_model, no team."""
    inner, fast = apps
    body = json.dumps({"text": "card"}).encode()
    by_view = await call(inner, body, token=token)
    assert await call(fast, body, token=token) == by_view
    assert by_view[0] == 200 and json.loads(by_view[2])["reason"] == "no_model"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"body": b'{"text": "card"}', "token": None}, 401, "not_authenticated"),
        ({"body": b'{"text": "card"}', "token": "0" * 40}, 401, "authentication_failed"),
        ({"body": b'{"text": 5}'}, 400, "invalid"),
        ({"body": b'{"text": "card", '}, 400, "parse_error"),
        ({"body": b'{"text": "card"}', "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"body": b'{"text": "card"}', "method": "PUT"}, 405, "method_not_allowed"),
        ({"body": b'{"text": "card"}', "host": "evil.example.com"}, 400, None),
        ({"body": json.dumps({"texts": ["x" * 4000] * 300}).encode()}, 413, "payload_too_large"),
        ({"body": b"[" * 20_000 + b"]" * 20_000}, 400, "too_deep"),
        # Parseable by json, but past the view's nesting limit: the fast path must not accept it either.
        ({"body": b'{"text": "card", "extra": ' + b"[" * 40 + b"]" * 40 + b"}"}, 400, "too_deep"),
    ],
)
async def test_everything_else_goes_to_the_view(apps, token, router, teams, install_version, request_kwargs, status,
                                                code):
    """Unknown tokens, bad bodies, other methods and hosts, oversized bodies: DRF answers (body replayed)."""
    await install_version_async(install_version)
    inner, fast = apps
    await call(inner, b'{"text": "card"}', token=token)  # the good token is cached
    kwargs = {"token": token, **request_kwargs}
    got_status, _, content = await call(fast, kwargs.pop("body"), **kwargs)
    assert inner.calls == 2 and got_status == status
    if code is not None:
        assert json.loads(content)["code"] == code


async def test_fast_path_counts_against_the_throttle(apps, token, router, teams, install_version, settings):
    """Requests answered by the fast path use up the token's rate; past it the view answers 429 + Retry-After."""
    rates = {"anon": "100/min", "user": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    await install_version_async(install_version)
    inner, fast = apps
    body = json.dumps({"text": "card"}).encode()
    statuses = [(await call(fast, body, token=token))[0] for _ in range(3)]
    status, headers, content = await call(fast, body, token=token)
    assert statuses == [200, 200, 200] and inner.calls == 2  # the first (token not cached yet) and the 429
    assert status == 429 and json.loads(content)["code"] == "throttled" and 0 < int(headers["retry-after"]) <= 60


async def install_version_async(install_version):
    from asgiref.sync import sync_to_async

    return await sync_to_async(install_version)("v1", state="active")
