"""Websocket URL patterns, each under its own origin policy (chatbot.project.asgi mounts them)."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.urls import path

from chatbot import agent_consumer, consumers

websocket_urlpatterns = [
    # The widget is embedded on customers' sites: any configured origin may open this socket,
    # and the conversation token (never a cookie) decides what it can read and write.
    path(
        "ws/chat/",
        OriginValidator(consumers.CustomerChatConsumer.as_asgi(), settings.CHAT_WIDGET_ORIGINS),
    ),
    # The console is ours: same-host origins only, and the session decides who the agent is.
    path(
        "ws/agent/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(agent_consumer.AgentConsumer.as_asgi())),
    ),
]
