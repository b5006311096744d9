"""What every chat socket's frames pass through: size and rate limits, JSON decoding, dispatch."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from chatbot.core import metrics
from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError
from chatbot.core.jsonsafe import json_loads_guarded
from chatbot.core.logs import log_bound

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_ABUSE = 4429
WINDOW_SECONDS = 10.0
# A frame this many times over the size limit is not a mistake: close at once.
GROSS_SIZE_FACTOR = 8
# Typing notices closer together than this are dropped: they only keep an indicator lit.
TYPING_INTERVAL_SECONDS = 1.0


class FrameGuard:
    """Per-connection limits: frame size, and writes per sliding 10 seconds.

    Refused frames count too: a client that keeps sending after as many refusals as the
    write limit within the window is abusive and gets closed.
    """

    def __init__(self, *, max_bytes: int, writes_per_window: int, clock=time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.writes_per_window = writes_per_window
        self.clock = clock
        self._writes: deque[float] = deque()
        self._refusals: deque[float] = deque()
        self.gross = False
        self._typing_at = float("-inf")

    def _trim(self, stamps: deque[float], now: float) -> None:
        while stamps and now - stamps[0] >= WINDOW_SECONDS:
            stamps.popleft()

    def _refuse(self, message: str, code: str) -> SwitchboardError:
        now = self.clock()
        self._refusals.append(now)
        self._trim(self._refusals, now)
        if len(self._refusals) >= self.writes_per_window:
            self.gross = True
        return SwitchboardError(message, code=code)

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            self.gross = self.gross or size > GROSS_SIZE_FACTOR * self.max_bytes
            raise self._refuse(f"Frame is {size} bytes; the limit is {self.max_bytes}.", "frame_too_large")

    def typing_due(self) -> bool:
        now = self.clock()
        if now - self._typing_at < TYPING_INTERVAL_SECONDS:
            return False
        self._typing_at = now
        return True

    def check_write(self) -> None:
        now = self.clock()
        self._trim(self._writes, now)
        if len(self._writes) >= self.writes_per_window:
            raise self._refuse(
                f"More than {self.writes_per_window} messages in {WINDOW_SECONDS:.0f} s; wait and resend "
                "with the same client_id.",
                "rate_limited",
            )
        self._writes.append(now)


def frame_decode(raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise SwitchboardError("Binary frames are not accepted; send JSON text.", code="bad_frame")
    try:
        frame = json_loads_guarded(raw)
    except SwitchboardError as exc:
        if exc.code == "too_deep":
            raise
        raise SwitchboardError("Frame is not valid JSON.", code="bad_frame") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise SwitchboardError('A frame must be a JSON object with a string "type".', code="bad_frame")
    return frame


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """Size and rate limits, JSON decoding and dispatch of frame types to ``frame_<type>`` methods."""

    frame_types: frozenset[str] = frozenset()
    write_types: frozenset[str] = frozenset()
    socket_kind = "customer"  # the chat_sockets_open label

    async def websocket_connect(self, message):
        self.counted_open = False
        self.guard = FrameGuard(
            max_bytes=int(setting("CHAT_MAX_FRAME_BYTES")),
            writes_per_window=int(setting("CHAT_MESSAGES_PER_10S")),
        )
        await super().websocket_connect(message)

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        if not self.counted_open:
            self.counted_open = True
            metrics.CHAT_SOCKETS.labels(self.socket_kind).inc()

    async def websocket_disconnect(self, message):
        if getattr(self, "counted_open", False):
            self.counted_open = False
            metrics.CHAT_SOCKETS.labels(self.socket_kind).dec()
        await super().websocket_disconnect(message)

    async def dispatch(self, message):
        # Channels runs close_old_connections on its single sync thread before every frame and
        # every group event: one thread hop each, all of a process's sockets queued on one
        # thread. These consumers never use that thread's connection; db_call does the same
        # cleanup around each call on the thread that holds the connection.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            # Only a group event can be unknown: one a newer server process sends during a rolling
            # upgrade. Dropping it keeps this socket up (Channels would end the consumer).
            logger.warning("chat: %s has no handler for event type %r; dropped", type(self).__name__, message["type"])
            return
        await handler(message)

    async def receive(self, text_data=None, bytes_data=None):
        frame = None
        try:
            self.guard.check_size(len(text_data.encode()) if text_data is not None else len(bytes_data or b""))
            frame = frame_decode(text_data)
            kind = frame["type"]
            if kind not in self.frame_types:
                known = ", ".join(sorted(self.frame_types))
                raise SwitchboardError(f"Unknown frame type '{kind[:40]}'; expected one of: {known}.", code="bad_frame")
            if kind in self.write_types:
                self.guard.check_write()
            if kind == "typing" and not self.guard.typing_due():
                return
            with log_bound(conversation_id=self.frame_conversation_id(frame)):
                await getattr(self, f"frame_{kind}")(frame)
        except SwitchboardError as exc:
            # Naming the refused message lets the client stop resending it.
            client_id = frame.get("client_id") if isinstance(frame, dict) else None
            await self.send_error(exc.code, exc.message, client_id=client_id if isinstance(client_id, str) else None)
            if self.guard.gross:
                await self.close(code=CLOSE_ABUSE)

    def frame_conversation_id(self, frame: dict[str, Any]) -> int | None:
        """The conversation a frame is about, for its log lines: the socket's own, or the one it names."""
        own = getattr(self, "conversation", None)
        named = frame.get("conversation_id")
        return own.pk if own is not None else named if isinstance(named, int) else None

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, code: str, detail: str, *, client_id: str | None = None) -> None:
        frame = {"type": "error", "code": code, "detail": detail}
        if client_id:
            frame["client_id"] = client_id[:64]
        await self.send_json(frame)

    async def refuse(self, code: int, error: str, detail: str) -> None:
        """Accept only to explain: browsers never see the reason of a refused handshake."""
        await self.accept()
        await self.send_error(error, detail)
        await self.close(code=code)
