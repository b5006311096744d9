"""The hot path of ``POST /api/v1/route``: Django's own middleware chain, run synchronously on one thread.

Through Django's ASGI handler most of a route request's CPU goes to thread hops around the model
call: every sync middleware, the view and the response close each cross from the event loop to a
thread and back (bench/route_bench.py measures it). This layer builds the same chain from ``settings.MIDDLEWARE``
with Django's ``load_middleware(is_async=False)`` and runs it, URL resolution and the
``process_view`` hooks included, on one worker thread per process. The innermost callable for
the route URL answers the common case — a token CachedTokenAuthentication has already verified,
a valid body, JSON chosen by the view's own content negotiation, inside the view's throttle
rates — with the view's classes, serializer, router and renderer, and hands every other request
to the real ``RouteApi`` view. Everything that is not ``POST /api/v1/route`` goes to the wrapped
app untouched. A middleware that cannot run synchronously turns the layer off, said at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix
from django.utils.module_loading import import_string
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import json
from rest_framework.views import set_rollback

from chatbot.core.errors import SwitchboardError
from chatbot.core.jsonsafe import json_loads_guarded
from chatbot.core.rest import CachedTokenAuthentication, exception_handler
from routing.apis import RouteApi, route_body, validated_route_input
from routing.router import get_router

logger = logging.getLogger(__name__)

ROUTE_PATH = "/api/v1/route"
# The content types the view's LimitedJSONParser reads as UTF-8 JSON; others go to the view.
JSON_TYPES = {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

# One inference at a time per process: the model session uses one thread, one process per core.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="route")


class RouteFastPath:
    """Wraps the HTTP app; runs ``POST /api/v1/route`` through the sync middleware chain, passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.handler = _sync_handler_or_none()

    async def __call__(self, scope: dict, receive, send) -> None:
        if self.handler is None or scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != ROUTE_PATH:
            return await self.app(scope, receive, send)
        try:
            body_file = await self.handler.read_body(receive)
        except RequestAborted:  # the client left before its body arrived, as Django treats it
            return
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(_EXECUTOR, self.handler.respond, scope, body_file)
        try:
            await self.handler.send_response(response, send)
        finally:
            if response.streaming:  # its content is read while sending, so it closes after
                await loop.run_in_executor(_EXECUTOR, response.close)


class SyncRouteHandler(ASGIHandler):
    """Django's ASGI handler with its middleware chain loaded sync, driven from one worker thread.

    Request building, error responses and response encoding are ASGIHandler's; only the chain's
    mode differs, so no middleware or view call hops threads.
    """

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    def respond(self, scope: dict, body_file) -> HttpResponseBase:
        """The response to one request, on the worker thread; a non-streaming one is already closed.

        Closing sends request_finished here, so close_old_connections runs on the thread that
        holds this request's database connections, as request_started did before it.
        """
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        body_file.close()  # the request's body is read or kept in request.body by now
        response._handler_class = self.__class__
        if not response.streaming:
            response.close()
        return response

    def resolve_request(self, request: HttpRequest):
        """Django's resolution; for RouteApi the callable is the common-case answer around the view."""
        match = super().resolve_request(request)
        if getattr(match.func, "view_class", None) is RouteApi:
            match.func = _with_common_case(match.func)
        return match


@functools.cache
def _with_common_case(view: Callable) -> Callable:
    """The route view, answering the common case itself; it carries the view's attributes
    (csrf_exempt, view_class), so process_view hooks see what they would see for the view."""

    @functools.wraps(view)
    def route(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        response = common_case_response(request, *args, **kwargs)
        return view(request, *args, **kwargs) if response is None else response

    return route


def _sync_handler_or_none() -> SyncRouteHandler | None:
    """The handler, or None (said in one WARNING line) when the settings need Django's async handler."""
    not_sync = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "sync_capable", True)]
    if not_sync:
        logger.warning(
            "route fast path OFF: middleware %s cannot run synchronously; POST %s goes through "
            "Django's ASGI handler, a thread hop per middleware",
            ", ".join(not_sync),
            ROUTE_PATH,
        )
        return None
    try:
        view_class = getattr(get_resolver().resolve(ROUTE_PATH).func, "view_class", None)
    except Resolver404:
        view_class = None
    if view_class is not RouteApi:
        logger.warning(
            "route fast path OFF: %s does not resolve to routing.apis.RouteApi in ROOT_URLCONF %s",
            ROUTE_PATH,
            settings.ROOT_URLCONF,
        )
        return None
    handler = SyncRouteHandler()
    logger.info(
        "route fast path on: POST %s runs the %d middlewares of settings.MIDDLEWARE synchronously on one worker thread",
        ROUTE_PATH,
        len(settings.MIDDLEWARE),
    )
    return handler


def common_case_response(request: HttpRequest, *args, **kwargs) -> HttpResponseBase | None:
    """RouteApi's response when the common case holds, else None (the view then answers).

    Built from the view's own methods — content negotiation, permission and throttle classes,
    exception handler, finalize_response (headers) and the DRF Response Django renders — and
    skipping only what the common case does not need: the token lookup (already cached) and
    DRF's parser (the body is UTF-8 JSON, decoded as LimitedJSONParser decodes it).
    """
    cached = _cached_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if cached is None or request.META.get("CONTENT_TYPE", "").lower() not in JSON_TYPES:
        return None
    view = _route_view(request, args, kwargs)
    try:
        renderer, media_type = view.perform_content_negotiation(view.request)
    except NotAcceptable:
        return None
    data = _validated_body(request) if type(renderer) is JSONRenderer else None
    if data is None:
        return None
    view.request.accepted_renderer, view.request.accepted_media_type = renderer, media_type
    view.request.user, view.request.auth = cached  # DRF sets them on the Django request too
    if not all(p.has_permission(view.request, view) for p in view.get_permissions()):
        return None
    if not all(t.allow_request(view.request, view) for t in view.get_throttles()):
        return None
    try:
        response = Response(route_body(get_router(), data))
    except Exception as exc:  # answered as the view answers it
        response = exception_handler(exc, view.get_exception_handler_context())
        set_rollback()
    return view.finalize_response(view.request, response, *args, **kwargs)


def _route_view(request: HttpRequest, args: tuple, kwargs: dict) -> RouteApi:
    """A RouteApi instance set up as its dispatch() sets it up, around a DRF request without parsers."""
    view = RouteApi()
    view.setup(request, *args, **kwargs)
    view.format_kwarg = view.get_format_suffix(**kwargs)
    view.request = Request(request, negotiator=view.get_content_negotiator())
    view.headers = view.default_response_headers
    return view


def _validated_body(request: HttpRequest) -> dict | None:
    """The validated route input, or None when the body is too large, not JSON or invalid."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        if limit is not None and int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return None
        body = request.body  # kept on the request: the view can still read it
        if limit is not None and len(body) > limit:
            return None
        return validated_route_input(json_loads_guarded(body.decode("utf-8"), parse_constant=json.strict_constant))
    except (ValueError, SwitchboardError, ValidationError):  # the view refuses it, in its words
        return None


def _cached_token(header: str) -> tuple[object, object] | None:
    """(user, token) when the Authorization header carries a token verified within the cache's lifetime."""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != CachedTokenAuthentication.keyword.lower():
        return None
    return CachedTokenAuthentication.cached(parts[1])
