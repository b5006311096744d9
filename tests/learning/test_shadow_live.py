"""A shadow candidate scores live chat traffic, driven through the real customer consumer."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chatbot.models import RoutingEvent
from tests.chatbot.conftest import customer_socket, receive_type


async def _events(conversation_id: int) -> list[tuple[bool, int]]:
    rows = RoutingEvent.objects.filter(conversation_id=conversation_id).order_by("id")
    return [(e.shadow, e.model_version_id) async for e in rows]


@pytest.mark.django_db(transaction=True)
async def test_chat_message_is_scored_by_the_shadow_and_shown_in_admin(
    settings, teams, install_version, staff_user, client
):
    """A customer's first message is routed by the active model and scored by the shadow one."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    active = await sync_to_async(install_version)(state="active")
    shadow = await sync_to_async(install_version)(state="shadow", shadow_since=timezone.now())
    socket, _ = await customer_socket()
    await socket.send_json_to({"type": "message", "text": "please refund my invoice", "client_id": "c1"})
    started = await receive_type(socket, "conversation")
    await receive_type(socket, "routed", timeout=10)
    for _ in range(100):  # the shadow scores right after routing, off the event loop
        events = await _events(started["id"])
        if len(events) == 2:
            break
        await asyncio.sleep(0.05)
    assert events == [(False, active.pk), (True, shadow.pk)]
    await socket.disconnect()
    await sync_to_async(client.force_login)(staff_user)
    content = (await sync_to_async(client.get)("/admin/routing/learning/shadow/")).content.decode()
    assert '<td id="shadow-scored">1</td>' in content
