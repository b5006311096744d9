from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Live chat"

    def ready(self):
        from django.core.signals import request_finished

        from chatbot import signals
        from chatbot.core import logs

        signals.receivers_connect()
        request_finished.connect(logs.request_context_clear, dispatch_uid="log_context_clear")
