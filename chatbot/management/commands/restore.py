from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chatbot.backup import backup_restore
from chatbot.core.errors import SwitchboardError


class Command(BaseCommand):
    help = "Restore a `manage.py backup` file into an empty database and model store (migrates first)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="a file written by `manage.py backup`")

    def handle(self, *args, file: Path, **options):
        try:
            manifest = backup_restore(path=file)
        except SwitchboardError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"restored {file} (written {manifest['created_at']}): active version {manifest['active_version']} verifies"
        )
