"""Ticket labelling admin: fast list labelling, per-team bulk actions, import and export.

Labelling is the slow human step of the loop, so the changelist is built for it: the team is
editable in the list, every active team has a one-click "Label as ..." action, and a panel says
how many labelled tickets each team has and whether that is enough to train.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import Truncator
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from chatbot.core.conf import setting
from chatbot.core.errors import SwitchboardError
from chatbot.core.text import text_hash, ticket_text_validate
from finetune.importing import team_map_load, tickets_import
from finetune.models import Ticket
from finetune.selectors import csv_lines, team_label_counts, ticket_export_rows, training_readiness
from finetune.services import tickets_label, tickets_label_no_intent, tickets_set_excluded
from finetune.ticket_files import FORMATS
from routing.models import Team

# Room for the form's other fields on top of the file itself.
_UPLOAD_OVERHEAD_BYTES = 256 * 1024


class LabelledFilter(admin.SimpleListFilter):
    title = "labelled"
    parameter_name = "labelled"

    def lookups(self, request, model_admin):
        return [("no", "Unlabelled"), ("yes", "Labelled"), ("no_intent", "Not a request (no intent)")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(team__isnull=True, no_intent=False)
        if self.value() == "yes":
            return queryset.filter(Q(team__isnull=False) | Q(no_intent=True))
        if self.value() == "no_intent":
            return queryset.filter(team__isnull=True, no_intent=True)
        return queryset


class TicketForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ["text", "team", "no_intent", "source", "external_id", "excluded"]
        help_texts = {
            "no_intent": "The model's reserved no-intent label (small talk), not a team: leave the team empty."
        }

    def clean_text(self) -> str:
        try:
            return ticket_text_validate(text=self.cleaned_data.get("text", ""))
        except SwitchboardError as exc:
            raise ValidationError(exc.message, code=exc.code)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("team") and cleaned.get("no_intent"):
            raise ValidationError("A ticket is labelled with a team or as 'not a request', not both: clear one.")
        return cleaned


class TicketImportForm(forms.Form):
    file = forms.FileField(help_text="A .csv file with a header row, or .jsonl with one object per line.")
    format = forms.ChoiceField(
        choices=[("", "From the file name")] + [(fmt, fmt.upper()) for fmt in FORMATS], required=False
    )
    text_column = forms.CharField(initial="text", max_length=200)
    label_column = forms.CharField(
        required=False, max_length=200, help_text="Leave empty to import the tickets unlabelled."
    )
    team_map_file = forms.FileField(required=False, help_text='JSON: {"label": "team slug or name"}.')
    team_map_text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label="…or paste the team map"
    )
    create_teams = forms.BooleanField(required=False, label="Create missing teams")

    def clean(self):
        cleaned = super().clean()
        raw = None
        if cleaned.get("team_map_file"):
            raw = cleaned["team_map_file"].read(1024 * 1024 + 1)
            if len(raw) > 1024 * 1024:
                raise ValidationError("The team map is over 1 MB; it should be a small JSON object.")
        elif (cleaned.get("team_map_text") or "").strip():
            raw = cleaned["team_map_text"]
        try:
            cleaned["team_map"] = team_map_load(raw=raw) if raw is not None else None
        except SwitchboardError as exc:
            raise ValidationError(exc.message)
        return cleaned


def _label_action(team: Team):
    def action(modeladmin: TicketAdmin, request: HttpRequest, queryset) -> None:
        count = tickets_label(tickets=queryset, team=team, user=request.user)
        modeladmin.message_user(request, f"Labelled {count} tickets as {team.name}.", messages.SUCCESS)

    return action


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketForm
    change_list_template = "admin/finetune/ticket/change_list.html"
    list_display = [
        "id",
        "short_text",
        "team",
        "label_kind",
        "source",
        "excluded",
        "split",
        "labelled_by",
        "labelled_at",
    ]
    list_display_links = ["id"]
    list_editable = ["team"]
    list_filter = [
        LabelledFilter,
        "team",
        "no_intent",
        "source",
        ("labelled_by", admin.RelatedOnlyFieldListFilter),
        "excluded",
        "split",
    ]
    search_fields = ["text"]
    list_select_related = ["team", "labelled_by"]
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = [
        "text_hash",
        "labelled_by",
        "labelled_at",
        "split",
        "corrected_from",
        "model_version",
        "meta",
        "created_at",
    ]
    actions = ["label_not_a_request", "unlabel_tickets", "exclude_tickets", "include_tickets", "export_csv"]

    @admin.display(description="text")
    def short_text(self, obj: Ticket) -> str:
        # Returned as a plain str, so the admin escapes it: hostile HTML shows as text.
        return Truncator(obj.text).chars(140)

    @admin.display(description="label")
    def label_kind(self, obj: Ticket) -> str:
        if obj.team_id:
            return "team"
        return "not a request (no intent)" if obj.no_intent else "unlabelled"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "team" and request is not None:
            # One query for the team choices per page, not one per editable row.
            cached = getattr(request, "_ticket_team_choices", None)
            if cached is None:
                cached = request._ticket_team_choices = list(formfield.choices)
            formfield.choices = cached
        return formfield

    def save_model(self, request, obj: Ticket, form, change: bool) -> None:
        obj.text_hash = text_hash(obj.text)
        super().save_model(request, obj, form, change)
        if "team" in form.changed_data:
            # Through the one labelling service, so list edits stamp who labelled and when.
            tickets_label(tickets=Ticket.objects.filter(pk=obj.pk), team=obj.team, user=request.user)
        if "no_intent" in form.changed_data and obj.no_intent:
            tickets_label_no_intent(tickets=Ticket.objects.filter(pk=obj.pk), user=request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            return actions
        for team in Team.objects.filter(active=True).order_by("name"):
            name = f"label_as_{team.slug}"
            actions[name] = (_label_action(team), name, f"Label as {team.name}")
        return actions

    @admin.action(description="Label selected as not a request (no intent, no team)", permissions=["change"])
    def label_not_a_request(self, request, queryset):
        count = tickets_label_no_intent(tickets=queryset, user=request.user)
        self.message_user(request, f"Labelled {count} tickets as not a request (no intent).", messages.SUCCESS)

    @admin.action(description="Unlabel selected tickets", permissions=["change"])
    def unlabel_tickets(self, request, queryset):
        count = tickets_label(tickets=queryset, team=None, user=request.user)
        self.message_user(request, f"Unlabelled {count} tickets.", messages.SUCCESS)

    @admin.action(description="Exclude selected (junk, never trained on)", permissions=["change"])
    def exclude_tickets(self, request, queryset):
        count = tickets_set_excluded(tickets=queryset, excluded=True)
        self.message_user(request, f"Excluded {count} tickets.", messages.SUCCESS)

    @admin.action(description="Include selected again (unexclude)", permissions=["change"])
    def include_tickets(self, request, queryset):
        count = tickets_set_excluded(tickets=queryset, excluded=False)
        self.message_user(request, f"Included {count} tickets again.", messages.SUCCESS)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return _csv_response(queryset)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "readiness": training_readiness(),
            "team_counts": team_label_counts(),
            "unlabelled_count": Ticket.objects.filter(team__isnull=True, no_intent=False, excluded=False).count(),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        extra = [
            path("import/", self.admin_site.admin_view(self.import_entry), name="finetune_ticket_import"),
            path("export/", self.admin_site.admin_view(self.export_view), name="finetune_ticket_export"),
        ]
        return extra + super().get_urls()

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """All tickets the changelist would show (its filters and search apply) as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(request, "Unknown filter in the export link.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:finetune_ticket_changelist"))
        return _csv_response(changelist.get_queryset(request))

    @csrf_exempt
    def import_entry(self, request: HttpRequest) -> HttpResponse:
        """Refuse an oversized upload from its Content-Length, before the body is parsed."""
        limit = setting("MAX_IMPORT_BYTES")
        length = _content_length(request)
        if request.method == "POST" and length > limit + _UPLOAD_OVERHEAD_BYTES:
            message = f"The upload is {length:,} bytes; the limit is {limit:,} bytes. Nothing was imported."
            return self._render_import(request, TicketImportForm(), errors=[message], status=413)
        return csrf_protect(self.import_view)(request)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return self._render_import(request, TicketImportForm())
        form = TicketImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render_import(request, form, status=400)
        data = form.cleaned_data
        report = tickets_import(
            stream_or_path=data["file"],
            fmt=data["format"] or None,
            text_column=data["text_column"].strip(),
            label_column=data["label_column"].strip() or None,
            team_map=data["team_map"],
            create_teams=data["create_teams"],
            source=Ticket.Source.IMPORT,
            user=request.user,
        )
        if not report.ok:
            return self._render_import(request, form, errors=report.summary_lines(), status=400)
        self.message_user(request, " ".join(report.summary_lines()), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:finetune_ticket_changelist"))

    def _render_import(self, request, form, *, errors=(), status: int = 200) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import tickets",
            "form": form,
            "import_errors": list(errors),
            "max_bytes": setting("MAX_IMPORT_BYTES"),
        }
        return TemplateResponse(request, "admin/finetune/ticket/import.html", context, status=status)


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _csv_response(queryset) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(ticket_export_rows(tickets=queryset)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="tickets.csv"'
    return response
