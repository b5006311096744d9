"""Reads for the live chat: conversations, messages, inboxes, and who may see them.

Payload functions return the JSON shapes the websocket frames carry, so the consumers,
the services' broadcasts and the console page all describe a conversation the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.crypto import constant_time_compare

from chatbot.core.errors import AgentAccessError, NotFoundError
from chatbot.models import Conversation, Message
from routing.conversation import MAX_TURNS, turns_join
from routing.models import Team

HISTORY_LIMIT = 200
INBOX_LIMIT = 100
PREVIEW_CHARS = 140


def _author_name(user: AbstractBaseUser | None) -> str | None:
    if user is None:
        return None
    return user.get_short_name() or user.get_username()


def message_payload(*, message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "sender": message.sender,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
        "author": _author_name(message.author) if message.author_id else None,
        "client_id": message.client_id,
    }


def conversation_messages(*, conversation: Conversation, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The last ``limit`` messages, oldest first."""
    newest = conversation.messages.select_related("author").order_by("-id")[:limit]
    return [message_payload(message=message) for message in reversed(list(newest))]


def conversation_no_intent_ids(*, conversation: Conversation, limit: int = HISTORY_LIMIT) -> list[int]:
    """Ids of the customer messages among the last ``limit`` that carry no intent (the model's
    answer, or an agent's "not a request"), for the console to show them so."""
    newest = conversation.messages.filter(sender=Message.Sender.CUSTOMER, carries_intent=False).order_by("-id")
    return sorted(newest.values_list("pk", flat=True)[:limit])


def conversation_first_customer_text(*, conversation: Conversation) -> str:
    """The customer's first message: the text the router decided on ('' if none yet)."""
    first = (
        conversation.messages.filter(sender=Message.Sender.CUSTOMER)
        .order_by("id")
        .values_list("text", flat=True)
        .first()
    )
    return first or ""


def conversation_in_triage(*, conversation: Conversation) -> bool:
    """Routed without a team, or to a deactivated one (no inbox any more): triage holds it.
    A conversation still waiting for an intent (not routed yet) is in no queue."""
    if conversation.routed_at is None:
        return False
    return conversation.team_id is None or not conversation.team.active


def conversation_team_payload(*, conversation: Conversation) -> dict[str, Any]:
    team = conversation.team
    return {
        "team": team.slug if team else None,
        "team_name": team.name if team else None,
        "triage": conversation_in_triage(conversation=conversation),
        "reason": conversation.routing_reason or None,
    }


def conversation_summary(*, conversation: Conversation, first_text: str | None = None) -> dict[str, Any]:
    """One inbox row: where it is, what the router predicted, and how it started.

    ``first_text``, the customer's first message when the caller has it, saves a query.
    """
    predicted = conversation.predicted_team
    if first_text is None:
        first_text = conversation_first_customer_text(conversation=conversation)
    return {
        "id": conversation.pk,
        "status": conversation.status,
        **conversation_team_payload(conversation=conversation),
        "predicted_team": predicted.slug if predicted else None,
        "predicted_team_name": predicted.name if predicted else None,
        "confidence": conversation.confidence,
        "waiting": conversation.routed_at is None,
        "language": conversation.language or None,
        "model_version": str(conversation.model_version_id) if conversation.model_version_id else None,
        "preview": first_text[:PREVIEW_CHARS],
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def conversation_get_by_token(*, token: object) -> Conversation | None:
    if not isinstance(token, str) or not token or len(token) > 64:
        return None
    return Conversation.objects.select_related("team").filter(token=token).first()


TRIAGE_PERMISSION = "work_triage"
ACCESS_REFUSALS = {
    "session_ended": "Your session has ended (logged out, expired, or the password changed); log in at /agent/login/.",
    "account_inactive": "This account is deactivated or deleted; ask an administrator to restore it.",
    "forbidden": "Only staff, team members and agents allowed to work triage can use the agent console.",
}


@dataclass(frozen=True)
class AgentAccess:
    """What an agent may do now, as the database says (see agent_access_get)."""

    user: AbstractBaseUser | None
    # Why the console is closed to them (a key of ACCESS_REFUSALS), or "" while it is open.
    refusal: str = ""
    staff: bool = False
    triage: bool = False
    # The active teams whose inboxes they work; empty when not read (with_teams=False).
    teams: tuple[Team, ...] = ()

    @property
    def team_slugs(self) -> frozenset[str]:
        return frozenset(team.slug for team in self.teams)

    def error(self) -> AgentAccessError:
        return AgentAccessError(ACCESS_REFUSALS[self.refusal], code=self.refusal)


def _session_data(session_key: str | None) -> dict[str, Any]:
    """The stored session (any SESSION_ENGINE), {} when it is gone or expired."""
    if not session_key:
        return {}
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()


def _session_authenticates(session: dict[str, Any], user: AbstractBaseUser) -> bool:
    """django.contrib.auth.get_user's check, re-run: same user, a configured backend, a current password hash."""
    if session.get(SESSION_KEY) != user._meta.pk.value_to_string(user):
        return False
    if session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return False
    stored = session.get(HASH_SESSION_KEY)
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return bool(stored) and any(constant_time_compare(stored, known) for known in hashes)


def _agent_user(user_id: object) -> AbstractBaseUser | None:
    """The user row with ``may_triage`` (the permission on the user or one of their groups): one query."""
    user_model = get_user_model()
    granted = Permission.objects.filter(codename=TRIAGE_PERMISSION, content_type__app_label="chatbot")
    may_triage = Exists(granted.filter(Q(user=OuterRef("pk")) | Q(group__user=OuterRef("pk"))))
    try:
        return user_model._default_manager.annotate(may_triage=may_triage).filter(pk=user_id).first()
    except (TypeError, ValueError, ValidationError):
        return None


def _access_of(user: AbstractBaseUser | None, *, with_teams: bool) -> AgentAccess:
    if user is None or not user.is_active:
        return AgentAccess(user=None, refusal="account_inactive")
    staff = user.is_staff
    triage = staff or user.is_superuser or user.may_triage
    if not with_teams:
        return AgentAccess(user=user, staff=staff, triage=triage)
    teams = Team.objects.filter(active=True).order_by("name")
    teams = tuple(teams if staff else teams.filter(members=user))
    refusal = "" if staff or teams or triage else "forbidden"
    return AgentAccess(user=user, refusal=refusal, staff=staff, triage=triage, teams=teams)


def agent_access_get(*, user_id: object, session_key: str | None, with_teams: bool = True) -> AgentAccess:
    """An agent socket's access now: its session still stored and valid for this active user, staff
    or not, triage or not (staff, superusers and holders of chatbot.work_triage), and their teams.

    Two queries (session, user) without teams, three with them: cheap enough for every action.
    """
    session = _session_data(session_key)
    access = _access_of(_agent_user(user_id), with_teams=with_teams)
    if access.user is not None and not _session_authenticates(session, access.user):
        return AgentAccess(user=None, refusal="session_ended")
    return access


def agent_access_of_user(*, user: AbstractBaseUser) -> AgentAccess:
    """The same for a request whose session Django's middleware has just checked (the console page)."""
    return _access_of(_agent_user(user.pk) if user.is_authenticated else None, with_teams=True)


def _agent_conversations(*, access: AgentAccess) -> QuerySet[Conversation]:
    """Routed conversations in the agent's inboxes and (for those who work it) triage, and for
    them too the waiting ones (announced: their customer wrote something without an intent yet)."""
    visible = Conversation.objects.filter(Q(routed_at__isnull=False) | ~Q(routing_reason=""))
    visible = visible.select_related("team", "predicted_team")
    if access.staff:
        return visible
    mine = Q(team__members=access.user, team__active=True, routed_at__isnull=False)
    if access.triage:
        mine |= Q(team__isnull=True) | Q(team__active=False)
    return visible.filter(mine)


def conversation_get_for_agent(*, access: AgentAccess, conversation_id: object) -> Conversation:
    """A conversation in one of the agent's inboxes or (if they work it) triage; else 'not found'."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFoundError("conversation_id must be an integer conversation id.", code="invalid_conversation")
    conversation = _agent_conversations(access=access).filter(pk=conversation_id).first()
    if conversation is None:
        where = "your teams' inboxes or in triage" if access.triage else "your teams' inboxes (you do not work triage)"
        raise NotFoundError(f"Conversation {conversation_id} is not in {where}.", code="not_found")
    return conversation


def agent_inbox(*, access: AgentAccess, limit: int = INBOX_LIMIT) -> list[dict[str, Any]]:
    """Open conversations in the agent's inboxes and triage, most recently active first."""
    open_ones = _agent_conversations(access=access).filter(status=Conversation.Status.OPEN).order_by("-updated_at")
    return [conversation_summary(conversation=conversation) for conversation in open_ones[:limit]]


def team_choices() -> list[Team]:
    """Teams a conversation can be moved to."""
    return list(Team.objects.filter(active=True).order_by("name"))


def conversation_text(*, conversation_id: int) -> tuple[str, int | None]:
    """The text the router decides a conversation on (its intent turns joined, else its last
    customer message) and the newest customer message's id: what the shadow model scores too."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, sender=Message.Sender.CUSTOMER)
        .order_by("-id")
        .values_list("pk", "text", "carries_intent")[: 4 * MAX_TURNS]
    )
    if not rows:
        return "", None
    carrying = [text for _, text, carries in reversed(rows) if carries]
    return (turns_join(carrying) if carrying else rows[0][1]), rows[0][0]
