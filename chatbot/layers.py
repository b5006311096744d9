"""The Redis pub/sub channel layer, with group sends pipelined per process.

channels_redis's pub/sub layer publishes one event per Redis round trip, under one lock per
shard: a process broadcasting hundreds of chat messages a second queues them behind each
other's round trips. Here a group send joins the events waiting for that shard and one task
writes them all in one pipeline; every caller still returns only once Redis has its event, and
events go out in the order they were sent. Subscriptions and receiving are channels_redis's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool
from redis import asyncio as aioredis


class _Publisher:
    """One shard's waiting events, and the task that pipelines them to Redis."""

    def __init__(self, host: dict[str, Any]) -> None:
        self._redis = aioredis.Redis(connection_pool=create_pool(host))
        self._waiting: list[tuple[str, bytes, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    def publish(self, channel: str, data: bytes) -> asyncio.Future:
        """Queue ``data`` for ``channel``; the future is done once Redis has it."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((channel, data, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, data, _ in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except Exception as exc:  # noqa: BLE001 - every waiting sender gets it
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._writer = None

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    """``RedisPubSubChannelLayer`` whose ``group_send`` shares one Redis pipeline per shard."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._publishers: dict[tuple[asyncio.AbstractEventLoop, int], _Publisher] = {}

    def _queue(self, group: str, message: dict[str, Any]) -> asyncio.Future:
        layer = self._get_layer()
        channel = layer._get_group_channel_name(group)
        shard = layer._get_shard(channel)
        key = (asyncio.get_running_loop(), id(shard))
        publisher = self._publishers.get(key)
        if publisher is None:
            publisher = self._publishers[key] = _Publisher(shard.host)
        return publisher.publish(channel, self.serialize(message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._queue(group, message)

    async def group_send_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """``group_send`` of each (group, message) in order, waiting once for them all."""
        await asyncio.gather(*[self._queue(group, message) for group, message in events])

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        for key in [key for key in self._publishers if key[0] is loop]:
            await self._publishers.pop(key).close()
        await self._get_layer().flush()
