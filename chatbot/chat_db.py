"""The chat's own database threads, and group commit of chat writes across sockets.

Chat writes run on a small pool of threads (one database connection each) instead of the one
thread Channels gives every ``database_sync_to_async`` call by default: one slow query or one
busy conversation no longer queues every other socket of the process behind it. Each socket
still awaits its own calls one at a time, so one conversation's writes keep their order.
Broadcasts a call commits come back to the event loop and are sent there (``db_call``), so a
database thread never waits on the channel layer.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async

from chatbot import broadcast, services
from chatbot.core.errors import SwitchboardError

# Database threads per process for chat work; each keeps its own connection (CONN_MAX_AGE).
CHAT_DB_THREADS = 8
# Items written in one transaction at most (see Batcher).
BATCH_MAX = 200

_db_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _db_pool
    if _db_pool is None:
        _db_pool = ThreadPoolExecutor(max_workers=CHAT_DB_THREADS, thread_name_prefix="chat-db")
    return _db_pool


def _collecting(func: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, list]:
    with broadcast.broadcasts_collected() as outbox:
        result = func(*args, **kwargs)
    return result, outbox.events


async def db_call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, list]:
    """``func(*args, **kwargs)`` on a chat DB thread: its result and the broadcasts it committed.

    The caller sends the broadcasts (``broadcast.broadcasts_send``) when it chooses, e.g. after
    an ack; connections are closed or kept per CONN_MAX_AGE around each call, as Channels does.
    """
    run = database_sync_to_async(_collecting, thread_sensitive=False, executor=_pool())
    return await run(func, args, kwargs)


class Batcher:
    """Work from every socket of the process, done a batch at a time by ``write_batch``.

    Group commit: while one batch is being written, new items wait and go together in the
    next; an idle process writes a lone item at once, a busy one pays one transaction (one
    thread hop, one commit) for many. ``write_batch`` returns one outcome per item, in order;
    an exception outcome is raised to that item's caller only. A socket submits its next item
    only after this one's outcome, so one conversation's order holds.
    """

    def __init__(self, write_batch: Callable[[list], Awaitable[list]], *, max_batch: int = BATCH_MAX) -> None:
        self.write_batch = write_batch
        self.max_batch = max_batch
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            # A fresh context: the batch is every socket's, not the log context of the first one.
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                try:
                    outcomes = await self.write_batch([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiting socket reports it
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._writer = None


async def posts_store(requests: list[services.PostRequest]) -> list:
    """``Batcher`` work for every chat message: (PostResult, broadcasts) or the refusal, per message."""
    outcomes, _ = await db_call(services.messages_post, requests=requests)
    return [result if isinstance(result, SwitchboardError) else (result, events) for result, events in outcomes]


_batchers: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Batcher]] = WeakKeyDictionary()


def batcher(write_batch: Callable[[list], Awaitable[list]], *, max_batch: int = BATCH_MAX) -> Batcher:
    """This event loop's Batcher for ``write_batch``."""
    loop = asyncio.get_running_loop()
    per_loop = _batchers.setdefault(loop, {})
    if write_batch not in per_loop:
        per_loop[write_batch] = Batcher(write_batch, max_batch=max_batch)
    return per_loop[write_batch]


async def db_run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``db_call``, then its broadcasts at once; returns the result."""
    result, events = await db_call(func, *args, **kwargs)
    await broadcast.broadcasts_send(events)
    return result
