"""Websocket URL patterns, mounted by chatbot.asgi under the origin validator and auth stack."""

from django.urls import path

from chatbot import consumers

websocket_urlpatterns = [
    path("ws/chat/", consumers.CustomerChatConsumer.as_asgi()),
    path("ws/agent/", consumers.AgentConsumer.as_asgi()),
]
