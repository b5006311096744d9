"""The pipelined Redis pub/sub layer: concurrent group sends all arrive, in the order they were sent."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from chatbot.layers import PipelinedPubSubChannelLayer

pytestmark = pytest.mark.scale("redis")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_concurrent_group_sends_arrive_once_each_in_send_order():
    """Two hundred sends at once share pipelines; a group member receives every event, in order."""
    layer = PipelinedPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"sbtest-{uuid.uuid4().hex[:12]}")
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    try:
        await asyncio.gather(*(layer.group_send("room", {"type": "chat.message", "n": n}) for n in range(200)))
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(200)]
        assert [event["n"] for event in received] == list(range(200))
    finally:
        await layer.group_discard("room", channel)
        await layer.flush()


async def test_a_send_to_an_unreachable_redis_raises_for_its_caller():
    """A failed pipeline is reported to each waiting sender instead of being dropped silently."""
    layer = PipelinedPubSubChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    with pytest.raises(RedisConnectionError):
        await layer.group_send("room", {"type": "chat.message"})
    await layer.flush()


async def test_group_send_many_delivers_to_each_group_in_order():
    """A list of (group, event) is sent in its order, each event to its own group only."""
    layer = PipelinedPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"sbtest-{uuid.uuid4().hex[:12]}")
    even, odd = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("even", even)
    await layer.group_add("odd", odd)
    try:
        await layer.group_send_many([("even" if n % 2 == 0 else "odd", {"type": "t", "n": n}) for n in range(40)])
        got_even = [(await asyncio.wait_for(layer.receive(even), 5))["n"] for _ in range(20)]
        got_odd = [(await asyncio.wait_for(layer.receive(odd), 5))["n"] for _ in range(20)]
        assert got_even == list(range(0, 40, 2)) and got_odd == list(range(1, 40, 2))
    finally:
        await layer.group_discard("even", even)
        await layer.group_discard("odd", odd)
        await layer.flush()
