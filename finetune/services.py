"""Writes to tickets: create, ingest (one or a batch, all or nothing), label, exclude, record agent corrections."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatbot.core.errors import SwitchboardError
from chatbot.core.text import text_hash, ticket_text_validate
from finetune.models import Ticket
from routing.models import ModelVersion, Team
from routing.selectors import team_get_by_slug


def tickets_move_team(*, team: Team, into: Team) -> int:
    """Relabel ``team``'s tickets (and corrections from it) to ``into``: the next run learns one class."""
    Ticket.objects.filter(corrected_from=team).update(corrected_from=into)
    return Ticket.objects.filter(team=team).update(team=into)


@dataclass(frozen=True)
class IngestResult:
    ticket: Ticket
    created: bool


def ticket_ingest(
    *,
    text: object,
    team_slug: str | None = None,
    source: str = Ticket.Source.API,
    external_id: str | None = None,
    user: AbstractBaseUser | None = None,
) -> IngestResult:
    """Create a ticket, idempotent on (source, external_id): a repeat returns the existing one."""
    cleaned = ticket_text_validate(text=text)
    team = team_get_by_slug(slug=team_slug) if team_slug else None
    if external_id:
        existing = Ticket.objects.filter(source=source, external_id=external_id).first()
        if existing is not None:
            return IngestResult(ticket=existing, created=False)
    ticket = Ticket(text=cleaned, text_hash=text_hash(cleaned), source=source, external_id=external_id)
    if team is not None:
        ticket.team = team
        ticket.labelled_by = user if user is not None and user.is_authenticated else None
        ticket.labelled_at = timezone.now()
    try:
        with transaction.atomic():
            ticket.save()
    except IntegrityError:
        # Another request ingested the same external id between our check and our insert.
        existing = Ticket.objects.filter(source=source, external_id=external_id).first()
        if existing is None:
            raise
        return IngestResult(ticket=existing, created=False)
    return IngestResult(ticket=ticket, created=True)


class TicketBatchError(SwitchboardError):
    """Some items of a bulk ingest are invalid; ``errors`` maps each item's index to why."""

    code = "invalid_tickets"

    def __init__(self, errors: dict[str, dict[str, str]], total: int):
        super().__init__(f"{len(errors)} of {total} tickets are invalid; nothing was written.")
        self.errors = errors


def tickets_ingest_many(*, items: list[dict], user: AbstractBaseUser | None) -> list[IngestResult]:
    """Ingest ``[{"text", "team"?, "external_id"?}, ...]`` all or nothing, idempotent per external id.

    Every item is validated before anything is written, so a helpdesk export with one bad row
    can be fixed and resent whole without creating half of it twice.
    """
    errors: dict[str, dict[str, str]] = {}
    for index, item in enumerate(items):
        try:
            ticket_text_validate(text=item.get("text"))
            if item.get("team"):
                team_get_by_slug(slug=item["team"])
        except SwitchboardError as exc:
            errors[str(index)] = {"code": exc.code, "detail": exc.message}
    if errors:
        raise TicketBatchError(errors, total=len(items))
    with transaction.atomic():
        return [
            ticket_ingest(
                text=item["text"],
                team_slug=item.get("team") or None,
                source=Ticket.Source.API,
                external_id=item.get("external_id") or None,
                user=user,
            )
            for item in items
        ]


def tickets_label(*, tickets, team: Team | None, user: AbstractBaseUser) -> int:
    """Set the team of many tickets at once (None unlabels). Returns how many changed."""
    now = timezone.now() if team is not None else None
    by = user if team is not None else None
    return tickets.update(team=team, no_intent=False, labelled_by=by, labelled_at=now)


def tickets_label_no_intent(*, tickets, user: AbstractBaseUser) -> int:
    """Label many tickets "not a request" (the model's no-intent label; no team). Returns how many."""
    return tickets.update(team=None, no_intent=True, labelled_by=user, labelled_at=timezone.now())


def ticket_record_not_a_request(
    *,
    text: str,
    message_id: int,
    conversation_id: int,
    user: AbstractBaseUser | None,
    model_version: ModelVersion | None,
) -> tuple[Ticket, bool]:
    """An agent marked a customer message "not a request": a no-intent ticket for the next run.

    One ticket per message (external id ``message-<id>``): a second mark returns it, (ticket, False).
    """
    cleaned = ticket_text_validate(text=text)
    external_id = f"message-{message_id}"
    existing = Ticket.objects.filter(source=Ticket.Source.NOT_A_REQUEST, external_id=external_id).first()
    if existing is not None:
        return existing, False
    ticket = Ticket(
        text=cleaned,
        text_hash=text_hash(cleaned),
        source=Ticket.Source.NOT_A_REQUEST,
        external_id=external_id,
        no_intent=True,
        labelled_by=user,
        labelled_at=timezone.now(),
        model_version=model_version,
        meta={"conversation_id": conversation_id, "message_id": message_id},
    )
    try:
        with transaction.atomic():
            ticket.save()
    except IntegrityError:  # the same mark from another console between the check and the insert
        return Ticket.objects.get(source=Ticket.Source.NOT_A_REQUEST, external_id=external_id), False
    return ticket, True


def tickets_set_excluded(*, tickets, excluded: bool) -> int:
    return tickets.update(excluded=excluded)


@transaction.atomic
def ticket_record_correction(
    *,
    text: str,
    team: Team,
    corrected_from: Team | None,
    user: AbstractBaseUser | None,
    model_version: ModelVersion | None,
    conversation_id: int | None = None,
) -> Ticket:
    """An agent moved a conversation to ``team``: that is a label for the customer's text.

    One correction ticket per conversation: a later reassignment relabels the same ticket.
    """
    cleaned = ticket_text_validate(text=text)
    external_id = f"conversation-{conversation_id}" if conversation_id else None
    ticket = None
    if external_id:
        ticket = (
            Ticket.objects.select_for_update().filter(source=Ticket.Source.CORRECTION, external_id=external_id).first()
        )
    if ticket is None:
        ticket = Ticket(source=Ticket.Source.CORRECTION, external_id=external_id)
        ticket.corrected_from = corrected_from
        ticket.model_version = model_version
    ticket.text = cleaned
    ticket.text_hash = text_hash(cleaned)
    ticket.team = team
    ticket.labelled_by = user
    ticket.labelled_at = timezone.now()
    ticket.meta = {**ticket.meta, "conversation_id": conversation_id}
    ticket.save()
    return ticket
