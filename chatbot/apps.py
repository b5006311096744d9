from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Live chat"

    def ready(self):
        from chatbot import signals

        signals.receivers_connect()
