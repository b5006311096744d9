from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "chatbot.learning"
    label = "learning"
    verbose_name = "Learning loop"

    def ready(self):
        from chatbot.events import conversations_routed
        from chatbot.learning.live import shadow_score_routed

        conversations_routed.connect(shadow_score_routed, dispatch_uid="learning_shadow_score_routed")
