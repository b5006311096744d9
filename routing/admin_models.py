"""ModelVersion admin: the version list, promote / roll back, and an evaluation page per version.

Versions are created only by training runs, so nothing here adds or edits one by hand; the
actions go through routing.services, which verifies the artifact before it may serve.
"""

from __future__ import annotations

import io

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from chatbot.core.errors import SwitchboardError
from routing.models import ModelVersion
from routing.services import model_version_promote, model_version_set_shadow

MODEL_ROWS = (
    ("baseline", "TF-IDF + logistic regression"),
    ("teacher", "teacher (torch)"),
    ("student", "student (torch)"),
    ("int8", "student int8 ONNX"),
    ("served", "served model (the int8 student, or its hybrid with TF-IDF)"),  # absent before format 3
)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _single(modeladmin, request: HttpRequest, queryset) -> ModelVersion | None:
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one model version.", messages.ERROR)
        return None
    return queryset.get()


def _promote(modeladmin, request: HttpRequest, queryset, verb: str) -> None:
    version = _single(modeladmin, request, queryset)
    if version is None:
        return
    try:
        version = model_version_promote(version=version, user=request.user)
    except SwitchboardError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    modeladmin.message_user(request, f"{verb} v{version.pk}: it now serves every router.", messages.SUCCESS)


@admin.action(description="Promote (make it the active model)", permissions=["change"])
def promote(modeladmin, request: HttpRequest, queryset) -> None:
    _promote(modeladmin, request, queryset, "Promoted")


@admin.action(description="Roll back to this version", permissions=["change"])
def roll_back_to(modeladmin, request: HttpRequest, queryset) -> None:
    _promote(modeladmin, request, queryset, "Rolled back to")


# Its report is a learning-loop page, reached by URL name: routing does not import the loop.
@admin.action(description="Put in shadow (score live traffic beside the active model)", permissions=["change"])
def put_in_shadow(modeladmin, request: HttpRequest, queryset) -> None:
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one model version to shadow.", messages.ERROR)
        return
    try:
        version = model_version_set_shadow(version=queryset.get(), user=request.user)
    except SwitchboardError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    report_url = reverse("learning:shadow") + f"?version={version.pk}"
    modeladmin.message_user(
        request, format_html('v{} is now in shadow: <a href="{}">see its report</a>.', version.pk, report_url)
    )


def evaluation_rows(metrics: dict) -> list[dict]:
    return [
        {"name": name, "accuracy": _pct(m.get("accuracy")), "macro_f1": _pct(m.get("macro_f1")), "n": m.get("n")}
        for key, name in MODEL_ROWS
        if (m := metrics.get(key))
    ]


def per_team_rows(metrics: dict) -> list[dict]:
    per_team = metrics.get("int8", {}).get("per_team", {})
    return [
        {
            "team": team,
            "precision": _pct(row["precision"]),
            "recall": _pct(row["recall"]),
            "f1": _pct(row["f1"]),
            "support": row["support"],
        }
        for team, row in sorted(per_team.items())
    ]


def confusion_png(*, matrix: list[list[int]], labels: list[str], title: str) -> bytes:
    """The confusion matrix as a PNG (rows: true team, columns: predicted), counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    size = 1.2 + 0.55 * max(len(labels), 2)
    figure = Figure(figsize=(size + 1.5, size), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(matrix or [[0]], cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted team")
    axes.set_ylabel("true team")
    axes.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "state",
        "int8_accuracy",
        "macro_f1",
        "baseline_accuracy",
        "created_at",
        "promoted_at",
        "evaluation_link",
    ]
    list_filter = ["state"]
    actions = [promote, roll_back_to, put_in_shadow]
    readonly_fields = ["evaluation_link"]
    exclude = ["metrics"]

    @admin.display(description="int8 test accuracy", ordering="test_accuracy")
    def int8_accuracy(self, version: ModelVersion) -> str:
        return _pct(version.test_accuracy)

    @admin.display(description="macro-F1")
    def macro_f1(self, version: ModelVersion) -> str:
        return _pct(version.metrics.get("int8", {}).get("macro_f1"))

    @admin.display(description="baseline accuracy")
    def baseline_accuracy(self, version: ModelVersion) -> str:
        return _pct((version.metrics.get("baseline") or {}).get("accuracy"))

    @admin.display(description="evaluation")
    def evaluation_link(self, version: ModelVersion) -> str:
        url = reverse("admin:routing_modelversion_evaluation", args=[version.pk])
        return format_html('<a href="{}">Evaluation</a>', url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The list's actions need "change"; a single version's page stays read-only.
        return obj is None and super().has_change_permission(request)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/evaluation/", view(self.evaluation_view), name="routing_modelversion_evaluation"),
            path("<int:pk>/confusion.png", view(self.confusion_view), name="routing_modelversion_confusion"),
        ] + super().get_urls()

    def _visible(self, request: HttpRequest, pk: int) -> ModelVersion:
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return version

    def evaluation_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._visible(request, pk)
        metrics = version.metrics or {}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Evaluation of v{version.pk}",
            "version": version,
            "metrics": metrics,
            "rows": evaluation_rows(metrics),
            "per_team": per_team_rows(metrics),
            "latency": metrics.get("latency_ms", {}).get("int8", {}),
            "size_mb": metrics.get("size_mb", {}).get("model.onnx"),
            "calibration": metrics.get("calibration", {}),
            "has_confusion": bool(metrics.get("int8", {}).get("confusion_matrix")),
        }
        return TemplateResponse(request, "admin/routing/modelversion/evaluation.html", context)

    def confusion_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._visible(request, pk)
        which = request.GET.get("model", "int8")
        metrics = (version.metrics or {}).get(which) if which in dict(MODEL_ROWS) else None
        if not metrics or not metrics.get("confusion_matrix"):
            return HttpResponse(f"v{version.pk} has no confusion matrix for {which!r}.", status=404)
        labels = version.labels or sorted(metrics.get("per_team", {}))
        png = confusion_png(
            matrix=metrics["confusion_matrix"], labels=labels, title=f"v{version.pk} {dict(MODEL_ROWS)[which]}"
        )
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response
