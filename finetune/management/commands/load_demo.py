"""``manage.py load_demo``: demo teams, tickets and users, with a printed credentials table."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chatbot.core.errors import SwitchboardError
from finetune.demo_setup import DEFAULT_DATA_DIR, DemoResult, demo_load


class Command(BaseCommand):
    help = "Create the demo teams, tickets, an admin and one agent per team (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="Holds teams.json and tickets.jsonl.")
        parser.add_argument("--password", help="Password for every new user (default: random, printed).")
        parser.add_argument("--reset-passwords", action="store_true", help="Also set new passwords for existing users.")

    def handle(self, *args, **options):
        try:
            result = demo_load(
                data_dir=Path(options["data_dir"]),
                password=options["password"],
                reset_passwords=options["reset_passwords"],
            )
        except SwitchboardError as exc:
            raise CommandError(exc.message)
        self._print(result)

    def _print(self, result: DemoResult) -> None:
        self.stdout.write(self.style.SUCCESS(f"Teams: {', '.join(team.slug for team in result.teams)}"))
        self.stdout.write("\n".join(result.tickets.summary_lines()))
        rows = [("username", "password", "role", "team")]
        rows += [
            (c.username, c.password if c.password is not None else "(unchanged)", c.role, c.team)
            for c in result.credentials
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        self.stdout.write("\nCredentials (shown once; passwords are not stored in clear):")
        for index, row in enumerate(rows):
            self.stdout.write("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
            if index == 0:
                self.stdout.write("  " + "  ".join("-" * width for width in widths))
        self.stdout.write(f"\nAPI token for {result.credentials[0].username}: {result.token}")
