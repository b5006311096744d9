"""Ticket and Team model behaviour: constraints and string forms."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from chatbot.core.text import text_hash
from finetune.models import Ticket, TrainingRun
from routing.models import Team


def _ticket(text: str, **fields) -> Ticket:
    return Ticket.objects.create(text=text, text_hash=text_hash(text), **fields)


@pytest.mark.django_db
def test_external_id_is_unique_per_source():
    """Two tickets from the same source cannot share an external id."""
    _ticket("first", source=Ticket.Source.API, external_id="ext-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _ticket("second", source=Ticket.Source.API, external_id="ext-1")
    assert Ticket.objects.count() == 1


@pytest.mark.django_db
def test_same_external_id_allowed_across_sources_and_when_null():
    """The uniqueness is per source, and tickets without an external id never collide."""
    _ticket("one", source=Ticket.Source.API, external_id="ext-1")
    _ticket("two", source=Ticket.Source.IMPORT, external_id="ext-1")
    _ticket("three", source=Ticket.Source.API)
    _ticket("four", source=Ticket.Source.API)
    assert Ticket.objects.count() == 4


@pytest.mark.django_db
def test_ticket_str_is_truncated_text():
    """A ticket prints as the first 80 characters of its text."""
    ticket = _ticket("x" * 200)
    assert str(ticket) == "x" * 80


@pytest.mark.django_db
def test_team_str_and_default_ordering():
    """Teams print as their name and list alphabetically."""
    Team.objects.create(slug="zeta", name="Zeta")
    Team.objects.create(slug="alpha", name="Alpha")
    assert [str(team) for team in Team.objects.all()] == ["Alpha", "Zeta"]


@pytest.mark.django_db
def test_team_with_tickets_cannot_be_deleted(teams):
    """A labelled ticket protects its team from deletion, so labels are never lost silently."""
    from django.db.models import ProtectedError

    _ticket("charged twice", team=teams[0])
    with pytest.raises(ProtectedError):
        teams[0].delete()


@pytest.mark.django_db
def test_training_run_str_and_is_finished():
    """A run prints its id and status, and only terminal statuses count as finished."""
    run = TrainingRun.objects.create()
    assert str(run) == f"Run #{run.pk} (queued)"
    assert not run.is_finished
    run.status = TrainingRun.Status.FAILED
    assert run.is_finished
