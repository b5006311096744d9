"""Agent access holds on every action and is pushed to open console sockets when it changes:
deactivation, team removal, logout elsewhere, and the triage permission."""

from __future__ import annotations

from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from chatbot.models import Conversation
from finetune.models import Ticket
from tests.chatbot.conftest import agent_socket, customer_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def _routed(text: str) -> tuple:
    """A customer socket whose first message has been routed; (socket, conversation id)."""
    socket = (await customer_socket())[0]
    await socket.send_json_to({"type": "message", "text": text, "client_id": "first"})
    await receive_type(socket, "ack")
    conversation_id = await database_sync_to_async(
        lambda: (
            Conversation.objects.filter(messages__client_id="first")
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
    )()
    await receive_type(socket, "routed")
    return socket, conversation_id


async def _assert_closed_4403(agent, code: str) -> None:
    error = await receive_type(agent, "error")
    assert error["code"] == code and error["detail"]
    assert (await agent.receive_output())["code"] == 4403
    assert await agent.receive_nothing(timeout=0.3)


@database_sync_to_async
def _deactivate(user) -> None:
    user.is_active = False
    user.save()


async def test_deactivated_agent_is_closed_and_stops_receiving(teams, agent_user, keyword_router):
    """Deactivating an agent closes their open socket (error, 4403); the team's next messages
    do not reach it."""
    agent, _ = await agent_socket(agent_user)
    await _deactivate(agent_user)
    await _assert_closed_4403(agent, "account_inactive")
    customer, _ = await _routed("refund my invoice")
    await customer.send_json_to({"type": "message", "text": "hello?", "client_id": "second"})
    await receive_type(customer, "ack")
    assert await agent.receive_nothing(timeout=0.3)
    await customer.disconnect()


async def test_removed_from_a_team_stops_hearing_it_and_keeps_the_others(teams, agent_user, keyword_router):
    """Removal from billing: a new inbox frame without billing; billing's messages stop, bugs' still come."""
    await database_sync_to_async(teams[2].members.add)(agent_user)
    agent, inbox = await agent_socket(agent_user)
    assert {team["slug"] for team in inbox["teams"]} == {"billing", "bugs"}
    await database_sync_to_async(teams[0].members.remove)(agent_user)
    narrowed = await receive_type(agent, "inbox")
    assert [team["slug"] for team in narrowed["teams"]] == ["bugs"] and narrowed["triage"] is True
    billing, _ = await _routed("refund my invoice")
    bugs, bugs_id = await _routed("app crash")
    assigned = await receive_type(agent, "conversation.assigned")
    assert assigned["conversation"]["id"] == bugs_id
    assert await agent.receive_nothing(timeout=0.3)
    for socket in (billing, bugs, agent):
        await socket.disconnect()


async def test_added_to_a_team_hears_it_at_once(teams, agent_user, keyword_router):
    """Joining bugs widens an open socket: a new inbox frame, and bugs' conversations arrive."""
    agent, _ = await agent_socket(agent_user)
    await database_sync_to_async(agent_user.teams.add)(teams[2])
    widened = await receive_type(agent, "inbox")
    assert [team["slug"] for team in widened["teams"]] == ["billing", "bugs"]
    bugs, bugs_id = await _routed("app crash")
    assert (await receive_type(agent, "conversation.assigned"))["conversation"]["id"] == bugs_id
    await bugs.disconnect()
    await agent.disconnect()


async def test_reply_and_reassign_after_removal_are_refused_and_write_nothing(teams, agent_user, keyword_router):
    """Removed from billing with the socket still open, the agent can neither reply to nor reassign
    a billing conversation: no message, no correction ticket; the conversation stays put."""
    await database_sync_to_async(teams[2].members.add)(agent_user)
    customer, conversation_id = await _routed("refund my invoice")
    agent, _ = await agent_socket(agent_user)
    await database_sync_to_async(teams[0].members.remove)(agent_user)
    await receive_type(agent, "inbox")
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "r"})
    assert (await receive_type(agent, "error"))["code"] == "not_found"
    await agent.send_json_to({"type": "reassign", "conversation_id": conversation_id, "team": "bugs"})
    assert (await receive_type(agent, "error"))["code"] == "not_found"
    conversation = await database_sync_to_async(Conversation.objects.select_related("team").get)(pk=conversation_id)
    assert conversation.team.slug == "billing"
    assert await database_sync_to_async(Ticket.objects.count)() == 0
    assert not await database_sync_to_async(conversation.messages.filter(sender="agent").exists)()
    await customer.disconnect()
    await agent.disconnect()


async def test_an_action_rechecks_access_even_without_a_push(teams, agent_user, keyword_router):
    """A deactivation no signal announces (a bulk update) is caught by the next action: refused, socket closed."""
    customer, conversation_id = await _routed("refund my invoice")
    agent, _ = await agent_socket(agent_user)
    await database_sync_to_async(get_user_model().objects.filter(pk=agent_user.pk).update)(is_active=False)
    await agent.send_json_to({"type": "reassign", "conversation_id": conversation_id, "team": "bugs"})
    await _assert_closed_4403(agent, "account_inactive")
    assert await database_sync_to_async(Ticket.objects.count)() == 0
    await customer.disconnect()


def _unheard():
    """Changes made now reach no socket by signal, as when another process on the in-memory layer makes them."""
    return mock.patch("chatbot.signals.agent_access_changed")


async def test_an_unannounced_team_removal_narrows_the_socket_on_the_recheck_timer(
    teams, agent_user, keyword_router, settings
):
    """Removed from billing where no signal reaches the server: within AGENT_ACCESS_RECHECK_SECONDS the
    socket gets an inbox frame without billing, and billing's new conversations no longer reach it."""
    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "AGENT_ACCESS_RECHECK_SECONDS": 0.2}
    await database_sync_to_async(teams[2].members.add)(agent_user)
    agent, _ = await agent_socket(agent_user)
    with _unheard():
        await database_sync_to_async(teams[0].members.remove)(agent_user)
    narrowed = await receive_type(agent, "inbox")
    assert [team["slug"] for team in narrowed["teams"]] == ["bugs"]
    billing, _ = await _routed("refund my invoice")
    assert await agent.receive_nothing(timeout=0.5)
    await billing.disconnect()
    await agent.disconnect()


async def test_an_unannounced_deactivation_closes_the_socket_on_the_recheck_timer(
    teams, agent_user, keyword_router, settings
):
    """Deactivated with no signal and no action from the agent: the timer closes the socket (4403)."""
    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "AGENT_ACCESS_RECHECK_SECONDS": 0.2}
    agent, _ = await agent_socket(agent_user)
    await database_sync_to_async(get_user_model().objects.filter(pk=agent_user.pk).update)(is_active=False)
    await _assert_closed_4403(agent, "account_inactive")


async def test_a_refused_action_narrows_the_socket_at_once(teams, agent_user, keyword_router, settings):
    """With the timer off, the first action on a team the agent silently left is refused and the socket
    leaves that team's inbox there and then (a new inbox frame after the error)."""
    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "AGENT_ACCESS_RECHECK_SECONDS": 0}
    await database_sync_to_async(teams[2].members.add)(agent_user)
    customer, conversation_id = await _routed("refund my invoice")
    agent, _ = await agent_socket(agent_user)
    with _unheard():
        await database_sync_to_async(teams[0].members.remove)(agent_user)
    await agent.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "r"})
    narrowed = await receive_type(agent, "inbox")
    assert [team["slug"] for team in narrowed["teams"]] == ["bugs"]
    assert (await receive_type(agent, "error"))["code"] == "not_found"
    await customer.disconnect()
    await agent.disconnect()


async def test_deleted_session_closes_the_socket(teams, agent_user, keyword_router):
    """Logging out elsewhere (the session row deleted) closes the socket opened with that session."""
    agent, _ = await agent_socket(agent_user)
    await database_sync_to_async(lambda: [s.delete() for s in Session.objects.all()])()
    await _assert_closed_4403(agent, "session_ended")


async def test_password_change_ends_other_sessions(teams, agent_user, keyword_router):
    """A new password invalidates the session's auth hash: the open socket closes."""
    agent, _ = await agent_socket(agent_user)

    def change():
        agent_user.set_password("a-new-pass-456")
        agent_user.save()

    await database_sync_to_async(change)()
    await _assert_closed_4403(agent, "session_ended")


@database_sync_to_async
def _agent_without_triage(team):
    user = get_user_model().objects.create_user("notriage", "n@example.com", "pw-123456789")
    team.members.add(user)
    return user


async def test_agent_without_triage_permission_neither_sees_nor_acts_on_triage(teams, keyword_router):
    """A non-staff team member without chatbot.work_triage: no triage conversations in the inbox or
    pushed, and open/reply/reassign/close on one are 'not found' and change nothing."""
    user = await _agent_without_triage(teams[0])
    triage, triage_id = await _routed("hello there")
    agent, inbox = await agent_socket(user)
    assert inbox["triage"] is False and triage_id not in {c["id"] for c in inbox["conversations"]}
    frames = [
        {"type": "open", "conversation_id": triage_id},
        {"type": "reply", "conversation_id": triage_id, "text": "hi", "client_id": "x"},
        {"type": "reassign", "conversation_id": triage_id, "team": "billing"},
        {"type": "close", "conversation_id": triage_id},
    ]
    for frame in frames:
        await agent.send_json_to(frame)
        assert (await receive_type(agent, "error"))["code"] == "not_found"
    other, _ = await _routed("what is this")
    assert await agent.receive_nothing(timeout=0.3)
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=triage_id)
    assert conversation.team_id is None and conversation.status == "open"
    assert await database_sync_to_async(Ticket.objects.count)() == 0
    for socket in (triage, other, agent):
        await socket.disconnect()


async def test_granting_the_triage_permission_widens_the_open_socket(teams, keyword_router):
    """Given chatbot.work_triage through a group, the open socket joins triage and lists its conversations."""
    from django.contrib.auth.models import Group, Permission

    user = await _agent_without_triage(teams[0])
    triage, triage_id = await _routed("hello there")
    agent, _ = await agent_socket(user)

    def grant():
        group = Group.objects.create(name="triagers")
        group.permissions.add(Permission.objects.get(codename="work_triage"))
        user.groups.add(group)

    await database_sync_to_async(grant)()
    widened = await receive_type(agent, "inbox")
    assert widened["triage"] is True and triage_id in {c["id"] for c in widened["conversations"]}
    await triage.disconnect()
    await agent.disconnect()


async def test_a_triage_agent_without_a_team_may_use_the_console(teams, keyword_router):
    """chatbot.work_triage alone opens the console: no team inbox, the triage queue only."""
    from django.contrib.auth.models import Permission

    def triager():
        user = get_user_model().objects.create_user("triager", "t@example.com", "pw-123456789")
        user.user_permissions.add(Permission.objects.get(codename="work_triage"))
        return user

    triage, triage_id = await _routed("hello there")
    billing, billing_id = await _routed("refund my invoice")
    agent, inbox = await agent_socket(await database_sync_to_async(triager)())
    assert inbox["teams"] == [] and inbox["triage"] is True
    assert {c["id"] for c in inbox["conversations"]} == {triage_id}
    for socket in (triage, billing, agent):
        await socket.disconnect()


def test_the_per_action_check_costs_two_queries(agent_user, django_assert_num_queries):
    """Every action re-reads access: the session and the user (with the triage right), nothing more."""
    from django.test import Client

    from chatbot import selectors

    client = Client()
    client.force_login(agent_user)
    with django_assert_num_queries(2):
        access = selectors.agent_access_get(
            user_id=agent_user.pk, session_key=client.cookies["sessionid"].value, with_teams=False
        )
    assert (access.refusal, access.triage, access.staff) == ("", True, False)


async def test_team_changes_reach_open_consoles(teams, agent_user, staff_user, keyword_router):
    """A new team widens a staff console; deactivating billing narrows its member's console."""
    from routing.models import Team

    staff, _ = await agent_socket(staff_user)
    await database_sync_to_async(Team.objects.create)(slug="sales", name="Sales")
    widened = await receive_type(staff, "inbox")
    assert "sales" in {team["slug"] for team in widened["teams"]}
    agent, _ = await agent_socket(agent_user)

    def deactivate():
        teams[0].active = False
        teams[0].save()

    await database_sync_to_async(deactivate)()
    assert (await receive_type(agent, "inbox"))["teams"] == []
    for socket in (staff, agent):
        await socket.disconnect()


@pytest.mark.parametrize(
    ("secure", "origin", "accepted"),
    [
        (False, b"http://testserver", True),
        (True, b"http://testserver", False),
        (True, b"https://testserver", True),
        (True, b"https://evil.example.com", False),
    ],
)
async def test_console_socket_takes_https_origins_once_the_site_is_secure(
    teams, agent_user, settings, secure, origin, accepted
):
    """With secure session cookies (production) /ws/agent/ refuses http:// origins; same host only, as before."""
    from channels.testing import WebsocketCommunicator

    from chatbot.project.asgi import application
    from tests.chatbot.conftest import _session_cookie

    settings.SESSION_COOKIE_SECURE = secure
    cookie = (await database_sync_to_async(_session_cookie)(agent_user)).encode()
    socket = WebsocketCommunicator(
        application, "/ws/agent/", headers=[(b"origin", origin), (b"host", b"testserver"), (b"cookie", cookie)]
    )
    connected, _ = await socket.connect()
    assert connected is accepted
    await socket.disconnect()
