from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "chatbot.learning"
    label = "learning"
    verbose_name = "Learning loop"
