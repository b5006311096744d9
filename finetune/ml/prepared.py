"""The labelled data as the pipeline trains on it: split, encoded, with the no-intent corpus added.

prepare() is the pipeline's first stage; data_counts() is what metrics.json says of the data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from transformers import AutoConfig

from .config import TrainConfig
from .data import encode
from .errors import PipelineError
from .no_intent import Corpus
from .open_world import add_no_intent, off_topic_lines
from .split import assign_splits, check_enough
from .window import message_body


@dataclass
class LabelledText:
    text: str
    label: str
    split: str  # "train", "val" or "test"; "" gets one assigned with the config's seed


@dataclass
class Prepared:
    """Texts, label indices and token ids per split, plus what fell back where."""

    labels: list[str]
    texts: dict[str, list[str]]
    y: dict[str, list[int]]
    ids: dict[str, list[list[int]]]
    unlabelled: list[str]
    eval_split: str  # where the reported metrics come from: "test", or a fallback
    notes: list[str] = field(default_factory=list)
    corpus: Corpus | None = None  # the no-intent corpus as trained on (None: no no-intent label)
    labelled_train: int = 0  # train texts before corpus lines and small-talk copies were added
    augmented: int = 0  # noisy copies of train texts the student was distilled on (no unlabelled pool)


def prepare(
    config: TrainConfig,
    examples: list[LabelledText],
    unlabelled: list[str],
    tokenizer,
    teams,
    pad_id=0,
    no_intent: list[str] = (),
) -> Prepared:
    """Check counts, fill missing splits, encode every split and the unlabelled texts; no-intent lines
    (`no_intent`, the helpdesk's own, then the shipped corpus) join the train split."""
    check_enough([e.label for e in examples], config.min_per_team, teams=teams)
    if config.message_body:  # the text every model of the run reads, and the router will read
        examples = [replace(e, text=message_body(e.text)) for e in examples]
        unlabelled = [message_body(t) for t in unlabelled]
        no_intent = [message_body(t) for t in no_intent]
    labels = sorted({e.label for e in examples} | set(teams or []))
    splits = assign_splits(
        [e.label for e in examples],
        [e.split for e in examples],
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )
    texts = {s: [e.text for e, sp in zip(examples, splits) if sp == s] for s in ("train", "val", "test")}
    y = {s: [labels.index(e.label) for e, sp in zip(examples, splits) if sp == s] for s in texts}
    labelled = {e.text for e in examples}
    extra = sorted({t for t in unlabelled if t.strip() and t not in labelled})
    random.Random(config.seed).shuffle(extra)
    data = Prepared(labels, texts, y, {}, extra[: config.max_unlabelled], "test")
    if not texts["test"]:
        data.eval_split = "val" if texts["val"] else "train"
        data.notes.append(f"The test split is empty: metrics are on the {data.eval_split} split.")
    if not texts["val"]:
        data.notes.append("The validation split is empty: no early stopping, temperature 1, threshold 1.")
    if not texts["train"]:
        raise PipelineError("The train split is empty: every labelled ticket is in val or test.")
    encode_texts = lambda t: encode(tokenizer, t, config.max_length, config.window_head)  # noqa: E731
    add_no_intent(config, data, [e.text for e in examples], list(no_intent), encode_texts, pad_id)
    data.ids = {s: encode(tokenizer, t, config.max_length, config.window_head) for s, t in texts.items()}
    data.ids["unlabelled"] = encode(tokenizer, data.unlabelled, config.max_length, config.window_head)
    return data


def student_depth_fit(config: TrainConfig, data: Prepared) -> TrainConfig:
    """A base model shallower than student_layers: the student keeps all its layers (noted)."""
    layers = AutoConfig.from_pretrained(config.base_model).num_hidden_layers
    if config.student_layers <= layers:
        return config
    data.notes.append(
        f"The base model has {layers} layers, fewer than student_layers={config.student_layers}: "
        f"the student keeps all {layers}."
    )
    return replace(config, student_layers=layers)


def encode_held_out(config: TrainConfig, data: Prepared, tokenizer, out_of_scope: list[str]) -> None:
    """Texts never trained on, for the open-world report: out-of-scope, off-topic, held-back no-intent."""
    held_out = (
        ("out_of_scope", out_of_scope),
        ("off_topic", off_topic_lines()),
        ("no_intent_heldout", data.corpus.heldout if data.corpus else []),
    )
    for name, texts in held_out:
        texts = [message_body(t) for t in texts] if config.message_body else texts
        data.texts[name], data.ids[name] = list(texts), encode(tokenizer, texts, config.max_length, config.window_head)


def data_counts(data: Prepared) -> dict:
    per_team = {label: {s: data.y[s].count(i) for s in ("train", "val", "test")} for i, label in enumerate(data.labels)}
    counts = {s: len(data.y[s]) for s in ("train", "val", "test")}
    corpus = data.corpus
    no_intent = (
        None
        if corpus is None
        else {
            "train": len(corpus.train),
            "heldout": len(corpus.heldout),
            "dropped": len(corpus.dropped),
            "helpdesk": len(corpus.helpdesk),
            "small_talk_copies": counts["train"] - data.labelled_train - len(corpus.train),
        }
    )
    trained = {"train_texts": counts["train"], "train": data.labelled_train}  # texts trained on vs tickets
    return {
        **counts,
        **trained,
        "unlabelled": len(data.unlabelled),
        "augmented": data.augmented,
        "per_team": per_team,
        "no_intent_corpus": no_intent,
    }
