"""Deeply nested JSON frames get an error frame on both sockets; the socket stays up and works."""

from __future__ import annotations

import pytest

from tests.chatbot.conftest import agent_socket, communicator, receive_type

pytestmark = pytest.mark.django_db(transaction=True)

# Under the 32 KB frame limit, and deep enough to raise RecursionError in json.loads.
NESTED_ARRAYS = "[" * 15_000 + "]" * 15_000
NESTED_OBJECTS = '{"type": "message", "text": ' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}"


async def _customer():
    socket = communicator("/ws/chat/")
    connected, _ = await socket.connect()
    assert connected
    return socket


@pytest.mark.parametrize("raw", [NESTED_ARRAYS, NESTED_OBJECTS], ids=["arrays", "objects"])
async def test_customer_socket_answers_nested_json_with_an_error_and_stays_up(teams, keyword_router, raw):
    """A too-deep frame is refused with error too_deep; the next message is stored and acked."""
    socket = await _customer()
    await socket.send_to(text_data=raw)
    error = await receive_type(socket, "error")
    assert error["code"] == "too_deep" and "32 levels" in error["detail"]
    await socket.send_json_to({"type": "message", "text": "still here", "client_id": "after"})
    assert (await receive_type(socket, "ack"))["client_id"] == "after"
    await socket.disconnect()


@pytest.mark.parametrize("raw", [NESTED_ARRAYS, NESTED_OBJECTS], ids=["arrays", "objects"])
async def test_agent_socket_answers_nested_json_with_an_error_and_stays_up(teams, agent_user, keyword_router, raw):
    """The console socket refuses a too-deep frame the same way; a reply after it is acked."""
    agent, _ = await agent_socket(agent_user)
    customer = await _customer()
    await customer.send_json_to({"type": "message", "text": "refund my invoice", "client_id": "first"})
    conversation_id = (await receive_type(agent, "conversation.assigned"))["conversation"]["id"]
    await agent.send_to(text_data=raw)
    assert (await receive_type(agent, "error"))["code"] == "too_deep"
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "r"})
    assert (await receive_type(agent, "ack"))["client_id"] == "r"
    await customer.disconnect()
    await agent.disconnect()
