"""Log lines: JSON (or text for humans), each carrying what this request or frame is about.

``log_context`` holds the request id, conversation id and model version where known; the
``ContextFilter`` on the handler copies them onto every record, so a log call never has to
pass them. The filter also masks conversation tokens in URLs (the app server logs every
websocket path with its query string at INFO). The request id comes from a well-formed
``X-Request-ID`` (set by the proxy in front) or is generated, and is returned in the response.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import pythonjsonlogger.json
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

CONTEXT_FIELDS = ("request_id", "conversation_id", "model_version")
# Never mutated in place: every change sets a new dict, so the shared default stays empty.
log_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

# A proxy's id is kept only when it cannot forge log lines: short, no spaces or quotes.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# ?token=… / &token=… in any logged URL (the customer socket's conversation token).
TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']+")


@contextmanager
def log_bound(**fields: Any) -> Iterator[None]:
    """Within the block, every log record of this context carries ``fields`` (None: unknown)."""
    reset = log_context.set({**log_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        log_context.reset(reset)


class ContextFilter(logging.Filter):
    """Adds the context fields to each record and masks conversation tokens in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = log_context.get()
        for name in CONTEXT_FIELDS:  # a field passed in the call's extra= wins
            setattr(record, name, getattr(record, name, None) or context.get(name))
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = TOKEN_IN_URL.sub(r"\1[redacted]", message), None
        return True


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """python-json-logger's formatter, leaving out the context fields this line does not know
    (and uvicorn's terminal-coloured copy of its message)."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value
            for key, value in log_data.items()
            if key != "color_message" and (value is not None or key not in CONTEXT_FIELDS)
        }


class TextFormatter(logging.Formatter):
    """One line for a human: time, level, logger, message, then the known context fields."""

    def format(self, record: logging.LogRecord) -> str:
        known = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None))
        line = super().format(record)
        return f"{line} [{known}]" if known else line


def request_id_for(request: HttpRequest) -> str:
    """The request's id: the proxy's X-Request-ID when well formed, else a new one."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    return given if REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds the request id for the request's log lines and returns it as X-Request-ID.

    Sync and async, as Django's own middlewares are: the route fast path runs it in its sync
    chain, Django's async handler without a thread hop. The id stays bound until
    request_finished, so the handler's own "Not Found" / "Bad Request" line, written after the
    middleware chain returns, carries it too.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        request_id = _request_bind(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = _request_bind(request)
        response = await self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _request_bind(request: HttpRequest) -> str:
    request.request_id = request_id_for(request)
    log_context.set({"request_id": request.request_id})
    return request.request_id


def request_context_clear(**kwargs: Any) -> None:
    """request_finished receiver: the next request on this thread starts without the last one's id."""
    log_context.set({})


def logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """settings.LOGGING: one stdout handler, JSON lines (``fmt="json"``) or text, at ``level``.

    The app server's own loggers (uvicorn, daphne) go through the same handler, so their access
    lines are JSON too and have their tokens masked.
    """
    if fmt not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', not {fmt!r}.")
    json_formatter = {
        "()": "chatbot.core.logs.JsonFormatter",
        "fmt": "%(levelname)s %(name)s %(message)s",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",  # ISO 8601, UTC, microseconds
    }
    text_formatter = {
        "()": "chatbot.core.logs.TextFormatter",
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
    }
    handler = {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]}
    server = {"handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "chatbot.core.logs.ContextFilter"}},
        "formatters": {"json": json_formatter, "text": text_formatter},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            "uvicorn": server,
            "uvicorn.access": server,
            "uvicorn.error": {"propagate": True},
            "daphne": {"level": "WARNING"},
            "django.channels.server": {"level": "WARNING"},
        },
    }
