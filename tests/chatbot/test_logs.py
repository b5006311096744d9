"""Log lines: JSON with level, logger, time and the context known; the request id; no secrets at INFO."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

import chatbot.project.asgi  # noqa: F401  (its django.setup() re-applies LOGGING: done before a test adds a handler)
from chatbot.consumers import CustomerChatConsumer
from chatbot.core.logs import log_bound, logging_config
from tests.chatbot.conftest import communicator, customer_socket, receive_type
from tests.test_settings import _run

pytestmark = pytest.mark.django_db(transaction=True)


class Lines(logging.Handler):
    """Every record at ``level`` and above, as the configured console handler writes it."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        [console] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
        self.filters, self.formatter = list(console.filters), console.formatter
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def lines():
    """The JSON lines logged during the test at DEBUG and above (the root's level lowered to match)."""
    root, server, handler = logging.getLogger(), logging.getLogger("uvicorn"), Lines(logging.DEBUG)
    level, root.level = root.level, logging.DEBUG
    root.addHandler(handler)
    server.addHandler(handler)  # the app server's loggers do not propagate to the root
    yield handler
    server.removeHandler(handler)
    root.removeHandler(handler)
    root.level = level


def test_a_line_is_json_with_level_logger_time_and_context(lines):
    """A line is one JSON object: level, logger, time, message, and the context fields bound (unknown ones left out)."""
    with log_bound(request_id="req-1", conversation_id=7):
        logging.getLogger("switchboard.test").warning("something %s", "happened")
    logging.getLogger("switchboard.test").info("outside")
    inside, outside = lines.parsed()
    assert inside["level"] == "WARNING" and inside["logger"] == "switchboard.test"
    assert inside["message"] == "something happened" and inside["time"].startswith("20")
    assert (inside["request_id"], inside["conversation_id"]) == ("req-1", 7) and "model_version" not in inside
    assert "request_id" not in outside and "conversation_id" not in outside


def test_level_and_format_come_from_the_environment(tmp_path):
    """LOG_LEVEL sets the root level; LOG_FORMAT=text writes plain lines; another LOG_FORMAT is refused."""
    code = "import django, logging; django.setup(); logging.getLogger('x').warning('hi'); logging.getLogger('x').info('no')"
    text = _run(tmp_path, code, LOG_LEVEL="WARNING", LOG_FORMAT="text")
    assert text.returncode == 0, text.stderr
    [line] = text.stderr.strip().splitlines()
    assert line.endswith("WARNING x hi") and not line.startswith("{")
    as_json = _run(tmp_path, code, LOG_LEVEL="INFO")
    assert [json.loads(line)["message"] for line in as_json.stderr.strip().splitlines()] == ["hi", "no"]
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(level="INFO", fmt="xml")


def test_the_app_servers_websocket_line_has_its_token_masked(lines):
    """uvicorn logs each websocket path with its query string at INFO: the conversation token is masked."""
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info('%s - "WebSocket %s" [accepted]', "10.0.0.1:5000", "/ws/chat/?token=s3cr3t-token&v=2")
    [line] = lines.parsed()
    assert "s3cr3t-token" not in line["message"] and "token=[redacted]&v=2" in line["message"]


def test_uvicorn_loggers_use_the_json_handler():
    """The app server's loggers write through the same JSON handler (their own handlers replaced)."""
    config = logging_config(level="INFO", fmt="json")
    for name in ("uvicorn", "uvicorn.access"):
        assert config["loggers"][name] == {"handlers": ["console"], "propagate": False}


async def test_no_token_or_message_text_at_info_in_a_chat(teams, keyword_router, lines):
    """A whole customer conversation (start, message, resume with the token) logs neither its token
    nor its text at INFO or above."""
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "refund my zebra-42 invoice", "client_id": "c-1"})
    token = (await receive_type(socket, "conversation"))["token"]
    await receive_type(socket, "ack")
    await socket.disconnect()
    again = communicator(f"/ws/chat/?token={token}")
    await again.connect()
    await again.disconnect()
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "1.2.3.4", f"/ws/chat/?token={token}")
    loud = [line for line in lines.parsed() if line["level"] not in {"DEBUG"}]
    assert loud, "nothing was logged at INFO: the audit saw nothing"
    assert not [line for line in loud if token in json.dumps(line) or "zebra-42" in json.dumps(line)]


async def test_a_frame_logs_with_its_conversation_id(teams, keyword_router, lines, monkeypatch):
    """Lines logged while a socket handles a frame carry the socket's conversation id."""

    async def typing(self, frame):
        logging.getLogger("switchboard.test").warning("typing seen")

    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "refund please", "client_id": "c-1"})
    conversation_id = (await receive_type(socket, "conversation"))["id"]
    await receive_type(socket, "ack")
    monkeypatch.setattr(CustomerChatConsumer, "frame_typing", typing)
    await socket.send_json_to({"type": "typing"})
    await socket.send_json_to({"type": "message", "text": "refund again", "client_id": "c-2"})
    await receive_type(socket, "ack")
    [line] = [line for line in lines.parsed() if line["message"] == "typing seen"]
    assert line["conversation_id"] == conversation_id
    await socket.disconnect()


@pytest.mark.parametrize(("given", "echoed"), [("edge-7f3a.42", True), ("bad id\nforged line", False), ("", False)])
def test_request_id_is_the_proxys_or_a_new_one(lines, given, echoed):
    """A well-formed X-Request-ID is returned and logged; a malformed or missing one is replaced by a new id."""
    headers = {"HTTP_X_REQUEST_ID": given} if given else {}
    response = Client().get("/api/v1/no-such-thing", **headers)
    request_id = response["X-Request-ID"]
    assert (request_id == given) is echoed and len(request_id) == (len(given) if echoed else 32)
    [not_found] = [line for line in lines.parsed() if line["logger"] == "django.request"]
    assert not_found["request_id"] == request_id


async def test_request_id_through_the_async_handler(lines):
    """Django's async handler (every request but the route fast path's) returns and logs the id as the sync one does."""
    from django.test import AsyncClient

    response = await AsyncClient().get("/api/v1/no-such-thing", headers={"X-Request-ID": "edge-async-1"})
    assert response.status_code == 404 and response["X-Request-ID"] == "edge-async-1"
    [not_found] = [line for line in lines.parsed() if line["logger"] == "django.request"]
    assert not_found["request_id"] == "edge-async-1"
