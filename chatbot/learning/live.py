"""The learning loop's hook into the live chat: after each routing batch, the shadow model scores it."""

from __future__ import annotations

from routing.models import ModelVersion


def shadow_score_routed(sender, *, conversation_ids: list[int], **kwargs) -> None:
    """Receiver of chatbot.events.conversations_routed: score the routed conversations with the shadow."""
    from chatbot import selectors  # late, like the two below: they load onnxruntime
    from chatbot.learning.shadow import shadow_score

    if not ModelVersion.objects.filter(state=ModelVersion.State.SHADOW).exists():
        return  # one query per batch instead of one per conversation
    for conversation_id in conversation_ids:
        text, message_id = selectors.conversation_text(conversation_id=conversation_id)
        if text:
            shadow_score(conversation_id=conversation_id, message_id=message_id, text=text)
