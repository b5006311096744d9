from django.core.management.base import BaseCommand

from chatbot.periodic import periodic_jobs, scheduler_build


class Command(BaseCommand):
    help = "Enqueue the periodic jobs (SWITCHBOARD['PERIODIC_JOBS']) on their intervals; run one per deployment."

    def handle(self, *args, **options):
        scheduler = scheduler_build()
        for path, seconds in periodic_jobs().items():
            self.stdout.write(f"every {seconds:g} s: {path}")
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)
