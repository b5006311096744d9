"""Cross-cutting REST pieces: JSON errors, a size-limited JSON parser, token cache, lazy throttles.

Every error leaves as ``{"code": "...", "detail": "human message"}`` plus ``"errors"`` for
field or item problems, whatever raised it: DRF, Django or a service's SwitchboardError.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle
from rest_framework.utils import json

from chatbot.core.errors import SwitchboardError
from chatbot.core.jsonsafe import json_loads_guarded

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"Request body is larger than {limit} bytes; send fewer or shorter items per request.")


class LimitedJSONParser(JSONParser):
    """JSONParser that enforces DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads the stream, bypassing Django's
    check) and parses with the nesting limit of chatbot.core.jsonsafe (too deep: 400 ``too_deep``)."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        parser_context = parser_context or {}
        request = parser_context.get("request")
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if limit is not None and declared > limit:
            raise PayloadTooLarge()
        body = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(body) > limit:
            raise PayloadTooLarge()
        return json_body_parse(body, encoding=parser_context.get("encoding", settings.DEFAULT_CHARSET))


def json_body_parse(body: bytes, *, encoding: str = "utf-8"):
    """A REST body as DRF's JSONParser reads it (strict constants), but never deeper than MAX_DEPTH.

    Invalid JSON is DRF's ``parse_error``; too deep is a SwitchboardError ``too_deep`` (400).
    """
    try:
        text = body.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise exceptions.ParseError(f"JSON parse error - {exc}") from None
    try:
        return json_loads_guarded(text, parse_constant=json.strict_constant if api_settings.STRICT_JSON else None)
    except SwitchboardError as exc:
        if exc.code == "bad_json":
            raise exceptions.ParseError(exc.message) from None
        raise


class CachedTokenAuthentication(TokenAuthentication):
    """TokenAuthentication that remembers a valid token for TOKEN_CACHE_SECONDS per process.

    The token lookup was ~40% of a route request; the price is that a deleted token or a
    deactivated user keeps working for at most that long in each process.
    """

    TOKEN_CACHE_SECONDS = 30.0
    _cache: dict[str, tuple[object, object, float]] = {}

    @classmethod
    def cached(cls, key: str) -> tuple[object, object] | None:
        """(user, token) for a key verified less than TOKEN_CACHE_SECONDS ago, else None."""
        cached = cls._cache.get(key)
        if cached is not None and cached[2] > time.monotonic():
            return cached[0], cached[1]
        return None

    def authenticate_credentials(self, key):
        cached = self.cached(key)
        if cached is not None:
            return cached
        user, token = super().authenticate_credentials(key)
        if len(self._cache) > 10_000:  # bounded: a flood of distinct valid tokens cannot grow it
            self._cache.clear()
        self._cache[key] = (user, token, time.monotonic() + self.TOKEN_CACHE_SECONDS)
        return user, token


class CanIngestTickets(BasePermission):
    """Sending tickets in takes the ``finetune.add_ticket`` permission, not just any valid token.

    Labelled tickets train the next model, and with auto-promotion that model serves: an
    integration that imports from another helpdesk gets the permission on its user (or a group)
    in the admin; a token that only routes cannot ingest. Staff superusers have it. Like the
    token itself (CachedTokenAuthentication), a change applies within TOKEN_CACHE_SECONDS.
    """

    message = (
        "This token's user may not ingest tickets: it needs the 'finetune.add_ticket' permission "
        "(Admin -> Users or Groups)."
    )
    code = "ingest_not_allowed"

    def has_permission(self, request, view) -> bool:
        # After IsAuthenticated (its 401 comes first); an anonymous user has no permissions anyway.
        return request.user.has_perm("finetune.add_ticket")


class SlottedRateThrottle(SimpleRateThrottle):
    """DRF's rate (N per period) kept as counts per 1/60 of the period, not a timestamp per request.

    DRF's SimpleRateThrottle stores one timestamp per request and (un)pickles the whole list on
    every check: measured 20 us per check at 100 entries, 0.3 ms at 6,000 and 5 ms at 100,000 (the
    default per-token rate is 100000/hour). Here the state is at most 60 (slot, count) pairs; the
    window is the current slot and the 59 before it, so it moves in steps of 1/60 of the period.
    The rate and the 429 + Retry-After answer are DRF's.
    """

    SLOTS = 60
    cache_format = "throttle_slots_%(scope)s_%(ident)s"  # not DRF's key: its values are timestamp lists

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        self.slot_seconds = self.duration / self.SLOTS
        current = int(self.now // self.slot_seconds)
        self.counts = [(slot, n) for slot, n in self.cache.get(self.key, []) if slot > current - self.SLOTS]
        if sum(n for _, n in self.counts) >= self.num_requests:
            return self.throttle_failure()
        if self.counts and self.counts[-1][0] == current:
            self.counts[-1] = (current, self.counts[-1][1] + 1)
        else:
            self.counts.append((current, 1))
        self.cache.set(self.key, self.counts, self.duration)
        return True

    def wait(self):
        """Seconds until enough of the oldest slots leave the window to admit one more request."""
        excess = sum(n for _, n in self.counts) - self.num_requests + 1
        for slot, n in self.counts:
            excess -= n
            if excess <= 0:
                return max((slot + self.SLOTS) * self.slot_seconds - self.now, 0.0)
        return float(self.duration)

    def get_rate(self):
        # Read at request time, so a changed REST_FRAMEWORK setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserThrottle(SlottedRateThrottle, UserRateThrottle):
    """Per token."""


class AnonThrottle(SlottedRateThrottle, AnonRateThrottle):
    """Per client address, for callers without a token."""


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def _validation_detail(errors) -> str:
    if isinstance(errors, dict) and list(errors) == ["non_field_errors"]:
        return str(errors["non_field_errors"][0])
    if isinstance(errors, dict):
        return f"Invalid input in: {', '.join(errors)}."
    return "Invalid input."


def exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: render every error as ``{"code", "detail"[, "errors"]}``."""
    # Imported here: rest_framework.views loads the classes above through api_settings.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, SwitchboardError):
        body = {"code": exc.code, "detail": exc.message}
        if getattr(exc, "errors", None):
            body["errors"] = exc.errors
        return Response(body, status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.error("unhandled API error", exc_info=exc)
        return Response(
            {"code": "server_error", "detail": "Internal error; it has been logged."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": _validation_detail(exc.detail), "errors": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        response.data = {"code": _code_of(exc), "detail": str(exc.detail)}
    else:  # Django's Http404 / PermissionDenied, which DRF maps to its own responses
        code = "not_found" if response.status_code == 404 else "permission_denied"
        response.data = {"code": code, "detail": str(response.data.get("detail", ""))}
    return response
