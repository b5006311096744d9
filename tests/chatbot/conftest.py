"""Fixtures for the live chat tests: a fresh in-memory channel layer, fake routers, sockets."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chatbot.core.errors import NoModelError
from routing.loaded_model import Prediction

KEYWORDS = {"invoice": "billing", "refund": "billing", "password": "accounts", "crash": "bugs"}
# What the keyword router takes for a message without a request (a trained model's no-intent class).
NO_INTENT_WORDS = {"hi", "hello", "hey", "thanks", "thank you", "ok", "ok thanks", "bye"}


class KeywordRouter:
    """Deterministic stand-in for the ONNX router: a keyword means a confident team."""

    def __init__(self, model_version: str = "1") -> None:
        self.model_version = model_version
        self.seen: list[str] = []

    async def apredict(self, texts: list[str]) -> list[Prediction]:
        self.seen.extend(texts)
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> Prediction:
        if text.lower().strip(" !.?") in NO_INTENT_WORDS:
            return Prediction(
                team=None,
                team_name=None,
                confidence=0.97,
                triage=False,
                reason="no_intent",
                language="en",
                scores={},
                model_version=self.model_version,
            )
        # The last keyword wins: a joined "invoice ... password" text points to accounts.
        found = [(text.lower().rfind(word), team) for word, team in KEYWORDS.items() if word in text.lower()]
        team = max(found)[1] if found else None
        confident = team is not None
        team = team or "bugs"
        confidence = 0.95 if confident else 0.3
        return Prediction(
            team=team,
            team_name=team.title(),
            confidence=confidence,
            triage=not confident,
            reason="routed" if confident else "low_confidence",
            language="en",
            scores={team: confidence},
            model_version=self.model_version,
        )


class FragmentRouter(KeywordRouter):
    """KeywordRouter, except that each half of a question typed over two messages scores as no intent alone."""

    HALVES = ("a question about my", "invoice please")

    def _one(self, text: str) -> Prediction:
        return super()._one("hi" if text in self.HALVES else text)


class NoModelRouter:
    async def apredict(self, texts: list[str]) -> list[Prediction]:
        raise NoModelError("No model has been trained yet.")


@pytest.fixture(autouse=True)
def memory_layer(settings):
    """Each test gets its own in-memory channel layer (the setting change drops the cached one)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def handshake_counts_cleared():
    """Each test starts with no handshakes counted (CHAT_HANDSHAKES_PER_MINUTE counts per address in
    the cache): sockets of earlier tests in the same minute must not refuse this test's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def keyword_router(monkeypatch) -> KeywordRouter:
    router = KeywordRouter()
    monkeypatch.setattr("routing.router.get_router", lambda: router)
    return router


@pytest.fixture
def fragment_router(monkeypatch) -> FragmentRouter:
    router = FragmentRouter()
    monkeypatch.setattr("routing.router.get_router", lambda: router)
    return router


@pytest.fixture
def no_model_router(monkeypatch) -> NoModelRouter:
    router = NoModelRouter()
    monkeypatch.setattr("routing.router.get_router", lambda: router)
    return router


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def communicator(path: str, cookie: str | None = None) -> WebsocketCommunicator:
    from chatbot.project.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def customer_socket(token: str | None = None) -> tuple[WebsocketCommunicator, dict]:
    """A connected customer socket and its first frame, ``history`` (empty for a new socket: the first
    message starts the conversation and brings the ``conversation`` frame)."""
    socket = communicator(f"/ws/chat/?token={token}" if token else "/ws/chat/")
    connected, _ = await socket.connect()
    assert connected
    return socket, await socket.receive_json_from()


async def agent_socket(user) -> tuple[WebsocketCommunicator, dict]:
    """A connected agent socket and its ``inbox`` frame."""
    socket = communicator("/ws/agent/", await sync_to_async(_session_cookie)(user))
    connected, _ = await socket.connect()
    assert connected
    inbox = await socket.receive_json_from()
    assert inbox["type"] == "inbox", inbox
    return socket, inbox


async def receive_type(socket: WebsocketCommunicator, kind: str, timeout: float = 2.0) -> dict:
    """The next frame of type ``kind``, skipping others (presence, typing, echoes)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await socket.receive_json_from(timeout=timeout)
            if frame["type"] == kind:
                return frame
