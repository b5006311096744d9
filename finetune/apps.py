from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    name = "finetune"
    verbose_name = "Tickets & training"

    def ready(self):
        from routing.teams import team_merged

        team_merged.connect(_relabel_tickets, dispatch_uid="finetune_team_merged")


def _relabel_tickets(sender, team, into, **kwargs) -> None:
    from finetune.services import tickets_move_team  # models load after the app registry

    tickets_move_team(team=team, into=into)
