"""Websocket URL patterns, each under its own origin policy (chatbot.project.asgi mounts them)."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from chatbot import agent_consumer, consumers


class ConsoleOriginValidator(OriginValidator):
    """Same-host origins (ALLOWED_HOSTS); once the site runs on https (secure session cookies, the
    production settings), https origins only: a console page over plain http can be rewritten on the way."""

    def __init__(self, application):
        super().__init__(application, settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        if settings.SESSION_COOKIE_SECURE or settings.SECURE_SSL_REDIRECT:
            if parsed_origin is None or parsed_origin.scheme != "https":
                return False
        return super().valid_origin(parsed_origin)


websocket_urlpatterns = [
    # The widget is embedded on customers' sites: any configured origin may open this socket,
    # and the conversation token (never a cookie) decides what it can read and write.
    path(
        "ws/chat/",
        OriginValidator(consumers.CustomerChatConsumer.as_asgi(), settings.CHAT_WIDGET_ORIGINS),
    ),
    # The console is ours: same-host origins only, and the session decides who the agent is.
    path("ws/agent/", ConsoleOriginValidator(AuthMiddlewareStack(agent_consumer.AgentConsumer.as_asgi()))),
]
