"""Two uvicorn processes sharing Redis: a customer on one and an agent on the other hear each other."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from chatbot.models import Message
from tests.chatbot.servers import asgi_servers, session_cookie_for

pytestmark = [pytest.mark.scale("redis"), pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def _next(ws, kind: str, timeout: float = 15.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


def _ws(base: str, path: str, **kwargs):
    return connect(base.replace("http", "ws", 1) + path, origin=base, open_timeout=15, **kwargs)


async def test_customer_and_agent_on_different_processes_see_each_other(tmp_path, teams, agent_user):
    """Customer on process A, agent on process B: routing, messages and replies cross via Redis."""
    env = {"REDIS_URL": REDIS_URL, "CHANNELS_PREFIX": f"sbtest-{uuid.uuid4().hex[:12]}"}
    cookie = await sync_to_async(session_cookie_for)(agent_user)
    with asgi_servers(tmp_path, ["a", "b"], **env) as (server_a, server_b):
        async with _ws(server_b, "/ws/agent/", additional_headers={"Cookie": cookie}) as agent:
            await _next(agent, "inbox")
            async with _ws(server_a, "/ws/chat/") as customer:
                await _next(customer, "history")
                await customer.send(json.dumps({"type": "message", "text": "I want a refund", "client_id": "m1"}))
                started = await _next(customer, "conversation")
                ack = await _next(customer, "ack")
                assigned = await _next(agent, "conversation.assigned")
                assert assigned["conversation"]["id"] == started["id"]
                assert [m["id"] for m in assigned["messages"]] == [ack["message_id"]]

                await customer.send(json.dumps({"type": "message", "text": "any news?", "client_id": "m2"}))
                message = await _next(agent, "message")
                assert (message["conversation_id"], message["text"]) == (started["id"], "any news?")

                reply = {"type": "reply", "conversation_id": started["id"], "text": "Refund sent.", "client_id": "r1"}
                await agent.send(json.dumps(reply))
                await _next(agent, "ack")
                heard = await _next(customer, "message")
                while heard["sender"] != "agent":
                    heard = await _next(customer, "message")
                assert (heard["text"], heard["author"]) == ("Refund sent.", "agent")
    stored = await sync_to_async(lambda: list(Message.objects.order_by("id").values_list("sender", "text")))()
    assert stored == [("customer", "I want a refund"), ("customer", "any news?"), ("agent", "Refund sent.")]


async def test_the_server_drops_a_huge_frame_before_buffering_it(tmp_path, teams):
    """uvicorn runs with --ws-max-size 64 KiB as documented: a 1 MiB frame ends the socket (1009), the
    server keeps serving; a frame between the app's 32 KB limit and 64 KiB gets the app's error frame."""
    from websockets.exceptions import ConnectionClosed

    with asgi_servers(tmp_path, ["a"]) as (server,):
        async with _ws(server, "/ws/chat/") as customer:
            await _next(customer, "history")
            await customer.send(json.dumps({"type": "message", "text": "y" * 40_000, "client_id": "big"}))
            assert (await _next(customer, "error"))["code"] == "frame_too_large"
            await customer.send("x" * (1 << 20))
            with pytest.raises(ConnectionClosed) as closed:
                await customer.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with _ws(server, "/ws/chat/") as again:
            assert (await _next(again, "history"))["messages"] == []
