"""The hot path of ``POST /api/v1/route``: an ASGI layer that answers the ordinary request itself.

Through Django and DRF one route request cost ~4 ms of CPU around a 0.6 ms model call: a new
thread per request for Django's sync parts (signals, the view, the response close), seven
middlewares and DRF's request, negotiation and rendering machinery. This layer answers the common
case — a token CachedTokenAuthentication has already verified, a body that RouteInputSerializer
accepts, inside the view's throttle rates — with the view's own permission and throttle classes,
the same serializer, router, renderer and response headers. Everything else (no or unknown token,
session cookies, bad JSON, validation errors, throttled callers, HTTPS redirects, other hosts or
settings it does not know) goes to Django unchanged, with the body replayed, so every error still
comes from DRF. Throttling and inference run on one worker thread per process, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.utils import json

from chatbot.errors import SwitchboardError
from chatbot.jsonsafe import json_loads_guarded
from routing.api_support import CachedTokenAuthentication, exception_handler
from routing.apis import RouteApi, route_body, validated_route_input
from routing.router import get_router

logger = logging.getLogger(__name__)

ROUTE_PATH = "/api/v1/route"
# The middlewares whose effect on this request the fast path reproduces (headers set in
# _response_headers; the others do nothing to a token-authenticated, CSRF-exempt JSON POST).
KNOWN_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
JSON_TYPES = {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

# One inference at a time per process: the model session uses one thread, one process per core.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="route")


@dataclass
class _Caller:
    """What DRF permission and throttle classes read from a request: the user."""

    user: Any
    auth: Any = None


class RouteFastPath:
    """Wraps the HTTP app; answers eligible ``POST /api/v1/route`` requests, passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != ROUTE_PATH:
            return await self.app(scope, receive, send)
        headers = _eligible_headers(scope)
        if headers is None:
            return await self.app(scope, receive, send)
        body, more, usable = await _read_body(receive)
        answer = await self._answer(headers, body) if usable else None
        if answer is None:
            return await self.app(scope, _replay(body, more, receive), send)
        status, content = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": _response_headers(scope, headers, len(content))})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes] | None:
        cached = _cached_token(headers.get(b"authorization", b""))
        if cached is None:
            return None
        caller = _Caller(user=cached[0], auth=cached[1])
        try:
            data = validated_route_input(json_loads_guarded(body, parse_constant=json.strict_constant))
        except (SwitchboardError, ValidationError):  # let DRF refuse it, in its words
            return None
        if not all(p().has_permission(caller, None) for p in RouteApi.permission_classes):
            return None
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(_EXECUTOR, _throttled_route_body, caller, data)
        except Exception as exc:  # rendered exactly as the DRF view renders it
            response = exception_handler(exc, {})
            return response.status_code, _render(response.data)
        return None if body is None else (200, _render(body))


def _eligible_headers(scope: dict) -> dict[bytes, bytes] | None:
    """The request's headers when nothing about the request or settings needs Django, else None."""
    if scope.get("root_path") or tuple(settings.MIDDLEWARE) != KNOWN_MIDDLEWARE:
        return None
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in headers:  # repeated headers: Django's joining rules apply
            return None
        headers[name] = value
    if headers.get(b"content-type", b"").lower() not in JSON_TYPES or b"authorization" not in headers:
        return None
    if settings.USE_X_FORWARDED_HOST or settings.DISALLOWED_USER_AGENTS or not _host_allowed(headers):
        return None
    if settings.SECURE_SSL_REDIRECT and not _is_secure(scope, headers):
        return None
    return headers


def _host_allowed(headers: dict[bytes, bytes]) -> bool:
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return bool(domain) and validate_host(domain, allowed)


def _is_secure(scope: dict, headers: dict[bytes, bytes]) -> bool:
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, expected = settings.SECURE_PROXY_SSL_HEADER
        name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        if name in headers:
            return headers[name].decode("latin-1").split(",", 1)[0].strip() == expected
    return scope.get("scheme") == "https"


def _cached_token(header: bytes) -> tuple[Any, Any] | None:
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != CachedTokenAuthentication.keyword.lower().encode():
        return None
    try:
        return CachedTokenAuthentication.cached(parts[1].decode())
    except UnicodeDecodeError:
        return None


async def _read_body(receive) -> tuple[bytes, bool, bool]:
    """(body read so far, whether more is to come, whether it is whole and within the size limit)."""
    chunks, size, limit = [], 0, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: Django sees it too
            return b"".join(chunks), True, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if limit is not None and size > limit:
            return b"".join(chunks), more, False
        if not more:
            return b"".join(chunks), False, True


def _replay(body: bytes, more: bool, receive):
    """A receive() that yields the body already read, then continues with the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": more}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed


def _throttled_route_body(caller: _Caller, data: dict) -> dict | None:
    """The route answer, or None when a throttle refuses (DRF then answers 429).

    On this thread, not the event loop: with REDIS_URL the throttles' cache is a network call.
    """
    try:
        if not all(throttle().allow_request(caller, None) for throttle in RouteApi.throttle_classes):
            return None
        return route_body(get_router(), data)
    finally:
        # Django closes a request's DB connections when it ends; this thread has no requests.
        close_old_connections()


def _render(data: dict) -> bytes:
    return JSONRenderer().render(data)


def _response_headers(scope: dict, headers: dict[bytes, bytes], length: int) -> list[tuple[bytes, bytes]]:
    """The headers DRF and the middlewares in KNOWN_MIDDLEWARE put on this response."""
    out = [
        (b"Content-Type", b"application/json"),
        (b"Vary", b"Accept"),
        (b"Allow", b"POST, OPTIONS"),
        (b"X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper().encode()),
        (b"Content-Length", str(length).encode()),
    ]
    if settings.SECURE_HSTS_SECONDS and _is_secure(scope, headers):
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        hsts += "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        hsts += "; preload" if settings.SECURE_HSTS_PRELOAD else ""
        out.append((b"Strict-Transport-Security", hsts.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        out.append((b"X-Content-Type-Options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        policy = policy if isinstance(policy, str) else ",".join(policy)
        out.append((b"Referrer-Policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        out.append((b"Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return out
