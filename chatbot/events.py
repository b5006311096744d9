"""Signals the chat sends so that packages above it can hook in without the chat importing them."""

from django.dispatch import Signal

# Sent on the chat DB pool after a routing batch committed, off the routing path; receivers get
# ``conversation_ids`` (list[int]). The learning loop's shadow scoring listens (LearningConfig.ready).
conversations_routed = Signal()
