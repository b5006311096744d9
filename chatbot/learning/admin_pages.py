"""Admin pages for the learning loop: the shadow report (one-click promote) and the drift dashboard.

Mounted by the project URLconf before the admin site, so it also serves the admin index with
the drift warnings on top: ``path("admin/", include("chatbot.learning.admin_pages"))``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from chatbot.core.errors import SwitchboardError
from chatbot.learning.drift import DriftDay, drift_daily, drift_warnings
from chatbot.learning.shadow import shadow_report, shadow_version
from finetune.training_queue import training_run_start
from routing.models import ModelVersion
from routing.services import model_version_clear_shadow, model_version_promote

app_name = "learning"

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 220, 36


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _shadow_act(request: HttpRequest, version: ModelVersion) -> HttpResponse:
    _require(request, "routing.change_modelversion")
    action = request.POST.get("action")
    try:
        if action == "promote":
            model_version_promote(version=version, user=request.user)
            messages.success(request, f"v{version.pk} is now active and serves every new conversation.")
        elif action == "stop":
            model_version_clear_shadow()
            messages.success(request, f"Stopped shadowing; v{version.pk} is a candidate again.")
        else:
            messages.error(request, f"Unknown action {action!r}: use promote or stop.")
    except SwitchboardError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("learning:shadow") + f"?version={version.pk}")


def shadow_report_view(request: HttpRequest) -> HttpResponse:
    _require(request, "routing.view_modelversion")
    requested = request.GET.get("version") or request.POST.get("version")
    version = get_object_or_404(ModelVersion, pk=int(requested)) if str(requested).isdecimal() else shadow_version()
    if request.method == "POST" and version is not None:
        return _shadow_act(request, version)
    shadowed = ModelVersion.objects.filter(routing_events__shadow=True).distinct().order_by("-pk")[:20]
    context = {
        **admin.site.each_context(request),
        "title": f"Shadow report: v{version.pk}" if version else "Shadow report",
        "version": version,
        "report": shadow_report(version=version) if version else None,
        "active": ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first(),
        "shadowed": shadowed,
    }
    return TemplateResponse(request, "admin/routing/learning/shadow_report.html", context)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _drift_marks(days: list[DriftDay], step: float, plot_h: float, most: int) -> tuple[list, list, list]:
    """Per day: its bar (x, y, width, height, title), its triage-share point, and about 7 date ticks in all."""
    bars, points, ticks = [], [], []
    for index, day in enumerate(days):
        x = CHART_PAD + index * step
        height = plot_h * day.corrections / most
        bars.append(
            (
                _n(x + step * 0.15),
                _n(CHART_PAD + plot_h - height),
                _n(step * 0.7),
                _n(height),
                f"{day.day}: {day.corrections} corrections",
            )
        )
        if day.triage_share is not None:
            points.append(f"{_n(x + step / 2)},{_n(CHART_PAD + plot_h * (1 - day.triage_share))}")
        if index % max(1, len(days) // 7) == 0:
            ticks.append((_n(x + step / 2), CHART_HEIGHT - 10, day.day.strftime("%b %d")))
    return bars, points, ticks


def drift_chart_svg(days: list[DriftDay]) -> SafeString:
    """Bars: corrections per day (right scale); line: share of conversations sent to triage (left, %)."""
    plot_w, plot_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    step = plot_w / max(1, len(days))
    most = max([day.corrections for day in days] + [1])
    bars, points, ticks = _drift_marks(days, step, plot_h, most)
    bar_svg = format_html_join(
        "", '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>', bars
    )
    tick_svg = format_html_join("", '<text x="{}" y="{}" text-anchor="middle">{}</text>', ticks)
    return format_html(
        '<svg class="drift-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="Corrections per day and share sent to triage">'
        '<line x1="{p}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>{bars}'
        '<polyline class="share" points="{points}"/>{ticks}'
        '<text x="4" y="{p}">100%</text><text x="4" y="{base}">0%</text>'
        '<text x="{right}" y="{top}" text-anchor="end">{most} corrections</text></svg>',
        w=CHART_WIDTH,
        h=CHART_HEIGHT,
        p=CHART_PAD,
        base=CHART_PAD + plot_h,
        right=CHART_PAD + plot_w,
        top=CHART_PAD - 8,
        bars=bar_svg,
        points=" ".join(points),
        ticks=tick_svg,
        most=most,
    )


def _start_training(request: HttpRequest) -> HttpResponse:
    _require(request, "finetune.add_trainingrun")
    try:
        run = training_run_start(user=request.user)
    except SwitchboardError as exc:
        messages.error(request, exc.message)
        return redirect("learning:drift")
    messages.success(request, f"Training run #{run.pk} queued; a worker picks it up.")
    return redirect("learning:drift")


def drift_dashboard_view(request: HttpRequest) -> HttpResponse:
    _require(request, "routing.view_modelversion")
    if request.method == "POST":
        return _start_training(request)
    span = 30 if request.GET.get("days") == "30" else 14
    days = drift_daily(days=span)
    context = {
        **admin.site.each_context(request),
        "title": "Drift watch",
        "span": span,
        "days": list(reversed(days)),
        "chart": drift_chart_svg(days),
        "warnings": drift_warnings(),
        "team_names": [team.name for team in days[0].teams] if days else [],
        "can_train": request.user.has_perm("finetune.add_trainingrun"),
    }
    return TemplateResponse(request, "admin/routing/learning/drift.html", context)


def admin_index_view(request: HttpRequest) -> HttpResponse:
    """The stock admin index with drift warnings and the learning-loop pages on top."""
    extra = {"learning_warnings": drift_warnings(), "learning_shadow": shadow_version()}
    response = admin.site.index(request, extra_context=extra)
    response.template_name = "admin/routing/learning/index.html"
    return response


urlpatterns = [
    path("", admin.site.admin_view(admin_index_view), name="index"),
    path("routing/learning/shadow/", admin.site.admin_view(shadow_report_view), name="shadow"),
    path("routing/learning/drift/", admin.site.admin_view(drift_dashboard_view), name="drift"),
]
