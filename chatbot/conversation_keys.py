"""The widget's conversation key: a secret it makes with a conversation's first message.

A first message's answer (the ``conversation`` frame with the token, and the ack) can be lost
with its socket. The widget then resends on a new socket, without a token; the key it sent the
first time finds the conversation the message started, and the socket gets that token again. Only
the key's sha256 is stored; like the token, it is a bearer secret (at least 128 random bits), so
a key a client did not make cannot be guessed. Widgets that send no key start a conversation per
first message, as before.
"""

from __future__ import annotations

import hashlib
import re

from chatbot.core.errors import SwitchboardError
from chatbot.models import Conversation

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,64}")


def conversation_key_hash(*, key: object) -> str | None:
    """The stored form of a first message's ``conversation_key`` (None when it sent none); a key that
    is not 22-64 URL-safe characters is refused."""
    if key is None:
        return None
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise SwitchboardError(
            "conversation_key must be 22-64 characters of A-Z, a-z, 0-9, '_' or '-', chosen at random by "
            "the widget (e.g. 32 random bytes in base64url); leave it out to start without one.",
            code="invalid_conversation_key",
        )
    return hashlib.sha256(key.encode()).hexdigest()


def conversation_ids_by_key(*, key_hashes: set[str]) -> dict[str, int]:
    """The ids of the conversations these keys started, by key hash (the caller locks them, together
    with its other rows, in one id-ordered lock)."""
    if not key_hashes:
        return {}
    rows = Conversation.objects.filter(start_key_hash__in=key_hashes).values_list("start_key_hash", "pk")
    return dict(rows)
