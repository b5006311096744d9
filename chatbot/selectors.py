"""Reads for the live chat: conversations, messages, inboxes, and who may see them.

Payload functions return the JSON shapes the websocket frames carry, so the consumers,
the services' broadcasts and the console page all describe a conversation the same way.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from chatbot.errors import NotFoundError
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


def conversation_first_customer_text(*, conversation: Conversation) -> str:
    """The customer's first message: the text the router decided on ('' if none yet)."""
    first = (
        conversation.messages.filter(sender=Message.Sender.CUSTOMER).order_by("id").values_list("text", flat=True).first()
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


def agent_teams(*, user: AbstractBaseUser) -> list[Team]:
    """The inboxes an agent works: every active team for staff, else the teams they belong to."""
    if not user.is_authenticated:
        return []
    teams = Team.objects.filter(active=True).order_by("name")
    if not user.is_staff:
        teams = teams.filter(members=user)
    return list(teams)


def agent_can_use_console(*, user: AbstractBaseUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_staff or Team.objects.filter(members=user, active=True).exists()


def _agent_conversations(*, user: AbstractBaseUser) -> QuerySet[Conversation]:
    """Routed conversations in the agent's inboxes and triage, and the waiting ones (announced:
    their customer wrote something without an intent yet)."""
    visible = Conversation.objects.filter(Q(routed_at__isnull=False) | ~Q(routing_reason=""))
    visible = visible.select_related("team", "predicted_team")
    if user.is_staff:
        return visible
    return visible.filter(Q(team__isnull=True) | Q(team__active=False) | Q(team__members=user, team__active=True))


def conversation_get_for_agent(*, user: AbstractBaseUser, conversation_id: object) -> Conversation:
    """A conversation in one of the agent's inboxes or in triage; anything else is 'not found'."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFoundError("conversation_id must be an integer conversation id.", code="invalid_conversation")
    conversation = _agent_conversations(user=user).filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFoundError(
            f"Conversation {conversation_id} is not in your teams' inboxes or in triage.", code="not_found"
        )
    return conversation


def agent_inbox(*, user: AbstractBaseUser, limit: int = INBOX_LIMIT) -> list[dict[str, Any]]:
    """Open conversations in the agent's inboxes and triage, most recently active first."""
    open_ones = _agent_conversations(user=user).filter(status=Conversation.Status.OPEN).order_by("-updated_at")
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
