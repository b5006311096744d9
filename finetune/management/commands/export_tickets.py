"""``manage.py export_tickets OUT.csv``: every ticket as CSV (``-`` writes to stdout)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from finetune.selectors import csv_lines, ticket_export_rows


class Command(BaseCommand):
    help = "Export all tickets to a CSV file (formula-safe; '-' for stdout)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="Output CSV path, or '-' for stdout.")

    def handle(self, *args, **options):
        if options["out"] == "-":
            count = self._write(lambda line: self.stdout.write(line, ending=""))
        else:
            try:
                with open(options["out"], "w", encoding="utf-8", newline="") as handle:
                    count = self._write(handle.write)
            except OSError as exc:
                raise CommandError(f"Cannot write {options['out']}: {exc.strerror}.")
            self.stdout.write(self.style.SUCCESS(f"Exported {count} tickets to {options['out']}."))

    @staticmethod
    def _write(write: Callable[[str], object]) -> int:
        lines = 0
        for line in csv_lines(ticket_export_rows()):
            write(line)
            lines += 1
        return lines - 1  # the header is not a ticket
