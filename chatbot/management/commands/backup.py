from pathlib import Path

from django.core.management.base import BaseCommand

from chatbot.backup import backup_write


class Command(BaseCommand):
    help = "Write the database's rows and the model store into one .tar.gz (restore it with `manage.py restore`)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the backup file to write, e.g. switchboard-2026-12-03.tar.gz")

    def handle(self, *args, file: Path, **options):
        manifest = backup_write(path=file)
        self.stdout.write(
            f"wrote {file}: {len(manifest['artifacts'])} model versions, active version {manifest['active_version']}"
        )
