"""Writes to training runs: execute one (in a worker or a terminal), fail the dead ones.

Starting and cancelling a run is finetune.training_queue (the web side), which enqueues
finetune.tasks.train_model, which executes the run here.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.crypto import get_random_string

from chatbot.core.conf import base_model_path, model_store, setting
from chatbot.core.errors import SwitchboardError
from chatbot.core.metrics import TRAINING_RUNS, TRAINING_SECONDS
from finetune.ml.config import TrainConfig
from finetune.ml.errors import Cancelled, ConfigError, PipelineError
from finetune.ml.split import assign_splits
from finetune.models import Ticket, TrainingRun
from finetune.selectors import ticket_no_intent_texts
from finetune.training_selectors import training_run_ids_alive, training_runs_stale
from routing.models import ModelVersion, Team

if TYPE_CHECKING:  # the pipeline imports torch: web processes load it only when they train
    from finetune.ml.pipeline import LabelledText

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-run-"
_TMP_NAME = re.compile(rf"^{re.escape(TMP_PREFIX)}(\d+)-")
Status = TrainingRun.Status
# (stage, percent, eta seconds or None, message) -> None; `manage.py train` draws a bar with it.
ProgressPrinter = Callable[[str, float, "float | None", str], None]
# Seconds between the tracker's row writes and between its cancel reads.
TRACKER_INTERVAL_SECONDS = 1.0


def training_config_build(*, overrides: dict | None = None) -> TrainConfig:
    """Defaults from the Switchboard settings, then the caller's keys; a bad config is a 400."""
    if overrides is not None and not isinstance(overrides, dict):
        raise SwitchboardError(
            f"config must be a JSON object of training options, got {type(overrides).__name__}.",
            code="invalid_config",
        )
    values = {
        "base_model": base_model_path(),
        "min_per_team": setting("MIN_TICKETS_PER_TEAM"),
        "target_precision": setting("TRIAGE_TARGET_PRECISION"),
        "device": setting("TRAINING_DEVICE"),
        **(overrides or {}),
    }
    try:
        config = TrainConfig.from_dict(values)
    except (ConfigError, TypeError) as exc:
        raise SwitchboardError(f"Invalid training config: {exc}", code="invalid_config") from exc
    if not Path(config.base_model).is_dir():
        raise SwitchboardError(
            f"Base model directory {config.base_model} does not exist; set SWITCHBOARD['BASE_MODEL'] "
            "(or the config's base_model) to a local Hugging Face model directory.",
            code="invalid_config",
        )
    return config


def training_runs_fail_stale() -> list[TrainingRun]:
    """Mark runs whose worker is gone as failed, then remove temp dirs no live run owns."""
    failed = []
    for run, reason in training_runs_stale():
        error = f"Run #{run.pk} was marked failed: {reason}. Start a new run."
        if TrainingRun.objects.filter(pk=run.pk, status=run.status).update(
            status=Status.FAILED, error=error, finished_at=timezone.now(), eta_seconds=None
        ):
            logger.warning(error)
            failed.append(run)
    training_run_tmp_cleanup()
    return failed


def training_run_tmp_cleanup() -> list[Path]:
    """Delete ``.tmp-run-<id>-*`` dirs in the store whose run is not in progress (a hard kill)."""
    store = model_store()
    if not store.is_dir():
        return []
    alive = training_run_ids_alive()
    removed = []
    for path in store.iterdir():
        match = _TMP_NAME.match(path.name)
        if match and path.is_dir() and int(match.group(1)) not in alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def training_examples_collect(*, config: TrainConfig) -> tuple[list[LabelledText], list[str], list[str]]:
    """Labelled examples (splits assigned and saved: frozen forever), unlabelled texts, team slugs."""
    tickets = list(
        Ticket.objects.filter(team__isnull=False, team__active=True, excluded=False)
        .select_related("team")
        .order_by("id")
    )
    # The same text (an import and a later correction, say) always shares one split: otherwise a
    # test ticket could also be a training ticket and flatter the test accuracy.
    split_of_text = {t.text_hash: t.split for t in tickets if t.split}
    splits = assign_splits(
        [t.team.slug for t in tickets],
        [t.split or split_of_text.get(t.text_hash, "") for t in tickets],
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )
    changed = []
    for ticket, split in zip(tickets, splits):
        split = split_of_text.setdefault(ticket.text_hash, split)
        if ticket.split != split:
            ticket.split = split
            changed.append(ticket)
    Ticket.objects.bulk_update(changed, ["split"], batch_size=500)
    from finetune.ml.pipeline import LabelledText

    examples = [LabelledText(text=t.text, label=t.team.slug, split=t.split) for t in tickets]
    unlabelled = list(
        Ticket.objects.filter(team__isnull=True, no_intent=False, excluded=False)
        .order_by("-id")
        .values_list("text", flat=True)[: config.max_unlabelled]
    )
    teams = list(Team.objects.filter(active=True).order_by("slug").values_list("slug", flat=True))
    return examples, unlabelled, teams


class RunTracker:
    """Pipeline callbacks -> the run row: at most one write and one cancel read per second.

    Every write also refreshes the heartbeat, which is how other processes tell a live run
    from one whose worker was killed.
    """

    def __init__(self, run: TrainingRun, printer: ProgressPrinter | None = None, interval: float | None = None):
        self.run_id, self.printer = run.pk, printer
        self.interval = TRACKER_INTERVAL_SECONDS if interval is None else interval
        self.started = time.monotonic()
        self.stage, self.percent, self.eta = run.stage, run.percent, None
        self.log = run.log
        self.last_write = self.last_read = self.last_line = float("-inf")
        self.cancelled = False

    def line(self, text: str) -> None:
        self.log += f"{timezone.now():%H:%M:%S} {text}\n"
        self.last_line = time.monotonic()

    def progress(self, stage: str, percent: float, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.percent = min(max(float(percent), 0.0), 100.0)
        self.eta = elapsed * (100 - self.percent) / self.percent if self.percent > 0 else None
        # A line per stage change, else one every few seconds: the log stays readable.
        if stage != self.stage or time.monotonic() - self.last_line >= 5:
            self.line(f"{stage} {self.percent:.0f}% {message}".rstrip())
        self.stage = stage
        if self.printer is not None:
            self.printer(stage, self.percent, self.eta, message)
        self.flush()

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_read >= self.interval:
            self.last_read = now
            self.cancelled = bool(
                TrainingRun.objects.filter(pk=self.run_id).values_list("cancel_requested", flat=True).first()
            )
            self.flush()
        return self.cancelled

    def flush(self) -> None:
        now = time.monotonic()
        if now - self.last_write < self.interval:
            return
        self.last_write = now
        TrainingRun.objects.filter(pk=self.run_id).update(
            stage=self.stage,
            percent=self.percent,
            eta_seconds=self.eta,
            log=self.log[-50_000:],
            heartbeat_at=timezone.now(),
        )


@contextmanager
def _heartbeat(run_id: int) -> Iterator[None]:
    """Refresh the run's heartbeat from a thread while it executes.

    Some pipeline steps (test-set inference, ONNX export, the baseline) make no progress calls
    for a while; without this, a slow machine could make a live run look dead to other processes.
    """
    stop = threading.Event()
    interval = max(float(setting("RUN_STALE_SECONDS")) / 4, 1.0)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(heartbeat_at=timezone.now())
                except DatabaseError:  # a busy database: the next beat tries again
                    logger.warning("Training run #%s: heartbeat write failed", run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


def _claim(run_id: int) -> bool:
    now = timezone.now()
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=now, heartbeat_at=now, stage="starting", percent=0.0
        )
    )


def training_run_execute(*, run_id: int, progress_printer: ProgressPrinter | None = None) -> TrainingRun:
    """Run the pipeline for a queued run; the row ends succeeded, failed or cancelled, never running."""
    training_runs_fail_stale()
    if not _claim(run_id):
        # Cancelled while queued, or already taken: nothing to do.
        return TrainingRun.objects.get(pk=run_id)
    run = TrainingRun.objects.get(pk=run_id)
    tracker = RunTracker(run, progress_printer)
    work_dir = model_store() / f"{TMP_PREFIX}{run.pk}-{get_random_string(8)}"
    try:
        with _heartbeat(run.pk):
            version, summary = _train_and_register(run, tracker, work_dir)
    except Cancelled:
        tracker.line("cancelled")
        return _finish(run, tracker, Status.CANCELLED, error="Cancelled on request.")
    except (PipelineError, SwitchboardError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        tracker.line(f"failed: {message}")
        return _finish(run, tracker, Status.FAILED, error=message)
    except Exception as exc:
        logger.exception("Training run #%s crashed", run.pk)
        tracker.log += traceback.format_exc()[-4000:]
        return _finish(run, tracker, Status.FAILED, error=f"Unexpected error: {type(exc).__name__}: {exc}")
    except BaseException:
        # Ctrl+C in `manage.py train`, or the worker forced to exit: never leave it "running".
        tracker.line("interrupted")
        _finish(run, tracker, Status.FAILED, error="Interrupted: the process running it was stopped.")
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return _finish(run, tracker, Status.SUCCEEDED, version=version, metrics=summary)


def _train_and_register(run: TrainingRun, tracker: RunTracker, work_dir: Path) -> tuple[ModelVersion, dict]:
    from finetune.ml.pipeline import run_pipeline
    from routing.registry import model_version_register, promotion_gate

    config = training_config_build(overrides=run.config)
    examples, unlabelled, teams = training_examples_collect(config=config)
    no_intent = ticket_no_intent_texts()
    tracker.line(
        f"{len(examples)} labelled tickets, {len(no_intent)} 'not a request', {len(unlabelled)} unlabelled texts, "
        f"teams: {', '.join(teams)}"
    )
    TrainingRun.objects.filter(pk=run.pk).update(config=config.to_dict())
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    result = run_pipeline(
        config=config,
        examples=examples,
        unlabelled=unlabelled,
        work_dir=work_dir,
        progress=tracker.progress,
        should_cancel=tracker.should_cancel,
        teams=teams,
        no_intent=no_intent,
    )
    version = model_version_register(run=run, result=result)
    tracker.line(f"registered model version v{version.pk}")
    promote, reason = promotion_gate(candidate=version)
    if promote:
        from routing.services import model_version_promote

        try:
            version = model_version_promote(version=version, user=run.started_by)
        except SwitchboardError as exc:
            # The model exists and is recorded; only serving it was refused (say, its files changed).
            promote, reason = False, f"v{version.pk} passed the gate but could not be promoted: {exc.message}"
    tracker.line(reason)
    return version, training_metrics_summary(metrics=result.metrics, promoted=promote, reason=reason)


def training_metrics_summary(*, metrics: dict, promoted: bool, reason: str) -> dict:
    """The headline numbers a run keeps; the full metrics live on the model version."""
    models = {
        name: {"accuracy": metrics[name]["accuracy"], "macro_f1": metrics[name]["macro_f1"]}
        for name in ("baseline", "teacher", "student", "int8")
        if metrics.get(name)
    }
    return {
        **models,
        "evaluated_on": metrics.get("evaluated_on"),
        "test_size": metrics.get("int8", {}).get("n"),
        "verdict": metrics.get("verdict", ""),
        "promoted": promoted,
        "promotion_reason": reason,
    }


def _finish(run, tracker, status, *, error="", version=None, metrics=None) -> TrainingRun:
    fields = {"status": status, "error": error, "finished_at": timezone.now(), "eta_seconds": None}
    if status == Status.SUCCEEDED:
        fields.update(stage="done", percent=100.0, model_version=version, metrics=metrics or {})
    TrainingRun.objects.filter(pk=run.pk).update(log=tracker.log[-50_000:], heartbeat_at=timezone.now(), **fields)
    run.refresh_from_db()
    TRAINING_RUNS.labels(status).inc()
    if run.started_at is not None:
        TRAINING_SECONDS.labels(status).observe((run.finished_at - run.started_at).total_seconds())
    return run
