"""``manage.py import_tickets FILE``: import a CSV/JSONL of tickets (all or nothing)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chatbot.core.errors import SwitchboardError
from finetune.importing import team_map_load, tickets_import
from finetune.models import Ticket
from finetune.ticket_files import FORMATS


class Command(BaseCommand):
    help = "Import tickets from a CSV or JSONL file. Duplicates are skipped; any error imports nothing."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to a .csv or .jsonl file.")
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file extension.")
        parser.add_argument("--text-column", default="text", help="Column/key holding the text.")
        parser.add_argument("--label-column", help="Column/key holding the label; omit to import unlabelled tickets.")
        parser.add_argument("--team-map", help="JSON file mapping label -> team slug or name.")
        parser.add_argument("--create-teams", action="store_true", help="Create teams for labels that match none.")
        parser.add_argument("--source", default=Ticket.Source.IMPORT, choices=Ticket.Source.values)

    def handle(self, *args, **options):
        team_map = None
        if options["team_map"]:
            try:
                team_map = team_map_load(raw=Path(options["team_map"]).read_bytes())
            except OSError as exc:
                raise CommandError(f"Cannot read team map {options['team_map']}: {exc.strerror}.")
            except SwitchboardError as exc:
                raise CommandError(exc.message)
        report = tickets_import(
            stream_or_path=options["file"],
            fmt=options["format"],
            text_column=options["text_column"],
            label_column=options["label_column"],
            team_map=team_map,
            create_teams=options["create_teams"],
            source=options["source"],
            user=None,
        )
        if not report.ok:
            raise CommandError("\n".join(report.summary_lines()))
        self.stdout.write(self.style.SUCCESS("\n".join(report.summary_lines())))
