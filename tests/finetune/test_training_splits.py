"""Split assignment at collection time: frozen per ticket, shared by tickets with the same text."""

from __future__ import annotations

import pytest

from chatbot.core.text import text_hash
from finetune.ml.config import TrainConfig
from finetune.models import Ticket
from finetune.training import training_examples_collect


def _ticket(text: str, team, **fields) -> Ticket:
    return Ticket.objects.create(text=text, text_hash=text_hash(text), team=team, **fields)


@pytest.mark.django_db
def test_same_text_never_lands_in_two_splits(teams):
    """A correction repeating a test ticket's text joins the test split, never train."""
    for i in range(30):
        _ticket(f"billing question number {i}", teams[0])
        _ticket(f"password reset number {i}", teams[1])
    original = _ticket("I was charged twice", teams[0], split="test")
    twin = _ticket("i was  CHARGED twice", teams[0], source=Ticket.Source.CORRECTION)
    _, _, _ = training_examples_collect(config=TrainConfig(base_model="unused", seed=3))
    twin.refresh_from_db()
    assert (original.split, twin.split) == ("test", "test")


@pytest.mark.django_db
def test_new_duplicates_share_one_split_and_existing_splits_stay(teams):
    """Unsplit tickets with one text get one split; tickets already split keep theirs."""
    kept = _ticket("how do I export my data", teams[1], split="val")
    for i in range(40):
        _ticket(f"refund for order {i}", teams[0])
        _ticket(f"refund for order {i} ", teams[0])  # same normalised text
    training_examples_collect(config=TrainConfig(base_model="unused", seed=5))
    kept.refresh_from_db()
    assert kept.split == "val"
    by_text: dict[str, set[str]] = {}
    for ticket in Ticket.objects.filter(team=teams[0]):
        by_text.setdefault(ticket.text_hash, set()).add(ticket.split)
    assert all(len(splits) == 1 and "" not in splits for splits in by_text.values())
    assert {next(iter(s)) for s in by_text.values()} >= {"train", "test"}
