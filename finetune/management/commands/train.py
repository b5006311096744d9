"""``manage.py train``: train on every labelled ticket in this terminal, with a progress bar.

The same run as the admin's button (a TrainingRun row, the same pipeline, the same promotion
gate), executed inline instead of through the worker queue, so a terminal alone goes from
``import_tickets`` to a serving model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from chatbot.core.errors import SwitchboardError
from finetune.training import training_run_execute, training_runs_fail_stale
from finetune.training_queue import training_run_start

ROWS = (
    ("baseline", "TF-IDF + LR baseline"),
    ("teacher", "teacher"),
    ("student", "student"),
    ("int8", "int8 ONNX (served)"),
)


class Command(BaseCommand):
    help = "Train a model on all labelled tickets in the foreground; exits non-zero if the run fails."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--config", help="Training options as JSON, e.g. '{\"epochs\": 3}'.")
        source.add_argument("--config-file", help="A JSON file of training options.")
        parser.add_argument(
            "--queue", action="store_true", help="Hand the run to the worker queue instead of running it here."
        )
        parser.add_argument(
            "--wait", action="store_true", help="With --queue: show the worker's progress until it ends."
        )

    def handle(self, *args, **options):
        config = self._config(options)
        try:
            run = training_run_start(user=None, config=config, enqueue=options["queue"])
        except SwitchboardError as exc:
            raise CommandError(exc.message)
        if options["queue"]:
            self.stdout.write(f"Run #{run.pk} queued; a worker (manage.py db_worker --queue-name training) runs it.")
            if not options["wait"]:
                return
        else:
            self.stdout.write(f"Run #{run.pk} started.")
        with tqdm(total=100, unit="%", file=self.stderr, bar_format="{desc}{percentage:3.0f}%|{bar}|") as bar:
            if options["queue"]:
                run = self._follow(run, self._printer(bar))
            else:
                run = training_run_execute(run_id=run.pk, progress_printer=self._printer(bar))
        if run.status != run.Status.SUCCEEDED:
            raise CommandError(f"Run #{run.pk} {run.status}: {run.error}")
        self._summary(run)

    def _config(self, options) -> dict | None:
        try:
            if options["config_file"]:
                return json.loads(Path(options["config_file"]).read_text())
            if options["config"]:
                return json.loads(options["config"])
        except OSError as exc:
            raise CommandError(f"Cannot read {options['config_file']}: {exc.strerror}.")
        except json.JSONDecodeError as exc:
            raise CommandError(f"The training config is not valid JSON: {exc}.")
        return None

    @staticmethod
    def _follow(run, show):
        """Poll the row the worker updates (at most once a second) until the run ends."""
        polls = 0
        while not run.is_finished:
            time.sleep(1)
            polls += 1
            if polls % 15 == 0:  # a worker that died mid-run must not leave us waiting forever
                training_runs_fail_stale()
            run.refresh_from_db()
            show(run.stage or "queued", run.percent, run.eta_seconds, "")
        return run

    @staticmethod
    def _printer(bar):
        def show(stage: str, percent: float, eta: float | None, message: str) -> None:
            bar.set_description(f"{stage} (ETA {eta:.0f} s)" if eta is not None else stage, refresh=False)
            bar.n = percent
            bar.refresh()

        return show

    def _summary(self, run) -> None:
        metrics = run.metrics
        self.stdout.write(f"\nMetrics on the {metrics.get('evaluated_on')} split (n={metrics.get('test_size')}):")
        self.stdout.write(f"  {'model':<22} {'accuracy':>9} {'macro-F1':>9}")
        for key, name in ROWS:
            if key in metrics:
                row = metrics[key]
                self.stdout.write(f"  {name:<22} {100 * row['accuracy']:>8.1f}% {100 * row['macro_f1']:>8.1f}%")
        self.stdout.write(metrics.get("verdict", ""))
        version = run.model_version
        state = "PROMOTED, now serving" if metrics.get("promoted") else "NOT promoted, left as a candidate"
        self.stdout.write(self.style.SUCCESS(f"Model version v{version.pk}: {state}."))
        self.stdout.write(metrics.get("promotion_reason", ""))
