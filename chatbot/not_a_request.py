"""An agent marks a customer message "not a request": the helpdesk's own small talk, learnt.

The message stops carrying an intent (the conversation is re-read without it: see
chatbot.live_routing.conversation_reevaluate) and becomes a ticket labelled with the model's
reserved no-intent label (finetune.services.ticket_record_not_a_request), which the next
training run puts in the no-intent class beside the shipped corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chatbot.broadcast import broadcast_on_commit, inbox_group
from chatbot.core.errors import NotFoundError, SwitchboardError
from chatbot.models import Conversation, Message
from chatbot.services import conversations_lock
from finetune.services import ticket_record_not_a_request


@dataclass(frozen=True)
class MarkResult:
    conversation_id: int
    message_id: int
    ticket_id: int
    # False for a repeated mark: the message was marked and its ticket recorded before.
    created: bool
    # Whether the model still places this conversation (open, no agent reply yet).
    reevaluate: bool


def _customer_message(conversation: Conversation, message_id: object) -> Message:
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise SwitchboardError("message_id must be the integer id of a customer message.", code="invalid_message")
    message = Message.objects.filter(pk=message_id, conversation_id=conversation.pk).first()
    if message is None:
        raise NotFoundError(f"Message {message_id} is not in conversation {conversation.pk}.", code="not_found")
    if message.sender != Message.Sender.CUSTOMER:
        raise SwitchboardError(
            f"Message {message_id} is an {message.sender} message; only a customer's message can be "
            "marked 'not a request'.",
            code="not_customer_message",
        )
    return message


@transaction.atomic
def message_mark_not_a_request(*, conversation: Conversation, message_id: object, user: AbstractBaseUser) -> MarkResult:
    """Mark a customer message "not a request" and record its no-intent ticket; a repeat changes nothing.

    The consoles following the conversation hear ``message.marked`` after the commit.
    """
    rows = conversations_lock([conversation.pk])
    if not rows:
        raise NotFoundError(f"Conversation {conversation.pk} does not exist.", code="not_found")
    locked = rows[0]
    message = _customer_message(locked, message_id)
    ticket, created = ticket_record_not_a_request(
        text=message.text,
        message_id=message.pk,
        conversation_id=locked.pk,
        user=user,
        model_version=locked.model_version,
    )
    changed = created or message.carries_intent is not False
    if message.carries_intent is not False:
        Message.objects.filter(pk=message.pk).update(carries_intent=False)
    if changed:
        event = {"type": "message.marked", "conversation_id": locked.pk, "message_id": message.pk}
        broadcast_on_commit(inbox_group(locked), event)
    reevaluate = changed and locked.status == Conversation.Status.OPEN and locked.agent_replied_at is None
    return MarkResult(locked.pk, message.pk, ticket.pk, created, reevaluate)
