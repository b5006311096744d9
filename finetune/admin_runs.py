"""Training run admin: a start button, a live progress bar, cancel, and read-only run records.

Runs are written only by the training services (start, cancel, the worker), never by hand, so
the admin shows them read-only and every action goes through a service.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from chatbot.core.errors import ConflictError, SwitchboardError
from finetune.models import TrainingRun
from finetune.training_queue import training_run_cancel, training_run_start
from finetune.training_selectors import training_run_in_progress, training_run_progress

START_PERMISSION = "finetune.add_trainingrun"
CANCEL_PERMISSION = "finetune.change_trainingrun"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def progress_bar(run: TrainingRun) -> str:
    colour = {"failed": "#ba2121", "cancelled": "#999"}.get(run.status, "#417690")
    return format_html(
        '<div style="width:140px;background:#eee;border-radius:3px" title="{}%">'
        '<div style="width:{}%;background:{};height:10px;border-radius:3px"></div></div>',
        f"{run.percent:.0f}",
        f"{run.percent:.1f}",
        colour,
    )


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "stage", "progress", "eta", "started_by", "created_at", "version_link"]
    list_filter = ["status"]
    list_select_related = ["started_by", "model_version"]
    actions = ["cancel_runs"]
    fields = [
        "status",
        "stage",
        "percent",
        "eta",
        "cancel_requested",
        "started_by",
        "version_link",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "task_id",
        "error_display",
        "metrics_display",
        "config_display",
        "log_display",
    ]
    change_list_template = "admin/finetune/trainingrun/change_list.html"
    change_form_template = "admin/finetune/trainingrun/change_form.html"

    @admin.display(description="progress")
    def progress(self, run: TrainingRun) -> str:
        return progress_bar(run)

    @admin.display(description="ETA")
    def eta(self, run: TrainingRun) -> str:
        return "—" if run.is_finished else _eta(run.eta_seconds)

    @admin.display(description="model version")
    def version_link(self, run: TrainingRun) -> str:
        if run.model_version_id is None:
            return "—"
        url = reverse("admin:routing_modelversion_change", args=[run.model_version_id])
        return format_html('<a href="{}">v{}</a>', url, run.model_version_id)

    @admin.display(description="error")
    def error_display(self, run: TrainingRun) -> str:
        return format_html('<pre style="white-space:pre-wrap;color:#ba2121">{}</pre>', run.error or "—")

    @admin.display(description="metrics")
    def metrics_display(self, run: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.metrics, indent=2) if run.metrics else "—")

    @admin.display(description="config")
    def config_display(self, run: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.config, indent=2))

    @admin.display(description="log")
    def log_display(self, run: TrainingRun) -> str:
        return format_html(
            '<pre id="run-log" style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>', run.log or "—"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset) -> None:
        for run in queryset.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]):
            run = training_run_cancel(run=run, user=request.user)
            self.message_user(request, f"Run #{run.pk}: {self._cancel_message(run)}", messages.SUCCESS)

    @staticmethod
    def _cancel_message(run: TrainingRun) -> str:
        if run.status == TrainingRun.Status.CANCELLED:
            return "cancelled."
        return "cancel requested; the worker stops it at its next step."

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("start/", view(self.start_view), name="finetune_trainingrun_start"),
            path("<int:pk>/progress/", view(self.progress_view), name="finetune_trainingrun_progress"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="finetune_trainingrun_cancel"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {"can_start": request.user.has_perm(START_PERMISSION), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_cancel": self.has_cancel_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        try:
            run = training_run_start(user=request.user)
        except ConflictError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            busy = training_run_in_progress()
            return redirect("admin:finetune_trainingrun_change", busy.pk) if busy else self._back(request)
        except SwitchboardError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return self._back(request)
        self.message_user(
            request,
            f"Run #{run.pk} queued. A worker (manage.py db_worker --queue-name training) picks it up.",
            messages.SUCCESS,
        )
        return redirect("admin:finetune_trainingrun_change", run.pk)

    def _back(self, request: HttpRequest) -> HttpResponse:
        referer = request.META.get("HTTP_REFERER", "")
        if referer and url_has_allowed_host_and_scheme(referer, {request.get_host()}, request.is_secure()):
            return redirect(referer)
        return redirect("admin:finetune_trainingrun_changelist")

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        run = get_object_or_404(TrainingRun, pk=pk)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse({**training_run_progress(run=run), "eta_display": self.eta(run)})

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        try:
            run = training_run_cancel(run=get_object_or_404(TrainingRun, pk=pk), user=request.user)
        except SwitchboardError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Run #{run.pk}: {self._cancel_message(run)}", messages.SUCCESS)
        return redirect("admin:finetune_trainingrun_change", pk)
