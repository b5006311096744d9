"""A ticket marked "not a request" reaches the next model's no-intent class; it is no team's ticket."""

from __future__ import annotations

import pytest

from chatbot.core.text import text_hash
from finetune.models import Ticket
from finetune.selectors import team_label_counts, ticket_no_intent_texts
from finetune.services import ticket_record_not_a_request
from finetune.training import (
    training_config_build,
    training_examples_collect,
    training_run_execute,
)
from finetune.training_queue import training_run_start
from tests.finetune.test_training_support import FAST_CONFIG, labelled, store, tiny_base  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_marked_message_is_trained_as_no_intent(staff_user, labelled, store):
    """The run trains the marked text in the no-intent class (the model's data counts say so); it counts
    for no team and is not an unlabelled text; an excluded one is left out."""
    before = {row.slug: row.count for row in team_label_counts()}
    ticket_record_not_a_request(
        text="cheers mate, legend", message_id=7, conversation_id=3, user=staff_user, model_version=None
    )
    Ticket.objects.create(text="junk", text_hash=text_hash("junk"), no_intent=True, excluded=True)
    assert ticket_no_intent_texts() == ["cheers mate, legend"]
    assert {row.slug: row.count for row in team_label_counts()} == before
    _, unlabelled, _ = training_examples_collect(config=training_config_build(overrides=FAST_CONFIG))
    assert "cheers mate, legend" not in unlabelled
    run = training_run_start(user=staff_user, config=FAST_CONFIG, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    assert run.model_version.metrics["data"]["no_intent_corpus"]["helpdesk"] == 1
