"""prepare(): every text the run trains and scores on is its message body when message_body is on."""

from __future__ import annotations

from dataclasses import replace

from transformers import AutoTokenizer

from finetune.ml.pipeline import LabelledText
from finetune.ml.prepared import encode_held_out, prepare
from finetune.ml.window import message_body
from tests.ml_fixtures import tiny_config, tiny_examples

LABELS = ["billing", "accounts", "bugs"]
SIGNATURE = "\n-- \nAnna Kowalski\nAccount manager, Example Ltd"


def signed(examples: list[LabelledText]) -> list[LabelledText]:
    return [replace(e, text=e.text + SIGNATURE) for e in examples]


def test_prepare_trains_on_message_bodies_or_on_whole_texts(tiny_base_model):
    """Labelled, unlabelled and the helpdesk's own no-intent texts lose their signatures; off, they keep them."""
    examples, unlabelled = tiny_examples(LABELS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = tiny_config(tiny_base_model)
    data = prepare(
        config,
        signed(examples),
        [u + SIGNATURE for u in unlabelled],
        tokenizer,
        LABELS,
        no_intent=["thanks!" + SIGNATURE],
    )
    every = [t for split in ("train", "val", "test") for t in data.texts[split]] + data.unlabelled
    assert not any("Kowalski" in text for text in every)
    assert "thanks!" in data.texts["train"]
    assert sorted(data.texts["val"] + data.texts["test"]) == sorted(
        t for t in (message_body(e.text) for e in signed(examples)) if t not in data.texts["train"]
    )
    encode_held_out(config, data, tokenizer, ["book me a taxi" + SIGNATURE])
    assert data.texts["out_of_scope"] == ["book me a taxi"]
    whole = prepare(replace(config, message_body=False), signed(examples), [], tokenizer, LABELS)
    assert all(text.endswith("Example Ltd") for text in whole.texts["val"] + whole.texts["test"])
