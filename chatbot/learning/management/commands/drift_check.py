"""Cron entry point for drift watch: print the warnings; with DRIFT_AUTO_TRAIN, start a training run."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from chatbot.learning.drift import drift_check


class Command(BaseCommand):
    help = "Print drift warnings (corrections per team this week vs last); optionally start a training run."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--auto-train",
            dest="auto_train",
            action="store_true",
            default=None,
            help="Start a training run when a warning fires (default: DRIFT_AUTO_TRAIN).",
        )
        group.add_argument(
            "--no-auto-train",
            dest="auto_train",
            action="store_false",
            help="Only print warnings, whatever DRIFT_AUTO_TRAIN says.",
        )

    def handle(self, *args, auto_train: bool | None, **options):
        result = drift_check(auto_train=auto_train)
        if not result.warnings:
            self.stdout.write("No drift: corrections are within the configured threshold for every team.")
        for warning in result.warnings:
            self.stdout.write(self.style.WARNING(warning.message))
        if result.run is not None:
            self.stdout.write(self.style.SUCCESS(f"Started training run #{result.run.pk}."))
        elif result.problem:
            self.stdout.write(self.style.ERROR(f"Did not start a training run: {result.problem}"))
