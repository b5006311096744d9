"""Tiny models and artifacts for tests: a random 2-layer, 64-wide BERT and a real pipeline run on it.

make_tiny_artifact() gives router, REST and chat tests a genuine artifact (ONNX int8 model,
tokenizer, labels.json, serving.json, metrics.json, card.md, checksums) in a few seconds.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# One group of topic words per synthetic team; labels beyond the groups reuse them with a suffix.
TOPICS = [
    ["invoice", "refund", "charge", "payment", "price", "bill", "money", "paid"],
    ["password", "login", "account", "email", "username", "profile", "sign", "locked"],
    ["error", "crash", "bug", "broken", "slow", "screen", "freeze", "fails"],
    ["delivery", "package", "shipping", "order", "arrived", "track", "address", "late"],
    ["card", "atm", "cash", "pin", "stolen", "lost", "wallet", "blocked"],
    ["transfer", "bank", "wire", "deposit", "balance", "fee", "sent", "pending"],
    ["privacy", "data", "delete", "security", "cookie", "consent", "report", "breach"],
    ["plan", "upgrade", "cancel", "subscription", "renew", "trial", "premium", "monthly"],
]
FILLER = (
    "i my the a an is it to of and in on for with this that please help me can you why how what "
    "when do does not have has had get got was were be been am are there today now again still "
    "need want would could should just really very thanks hello hi hey team problem issue about"
).split()
PUNCTUATION = list(".,!?'\"-:;()/&$%#@")


def tiny_vocab() -> list[str]:
    words = sorted({w for group in TOPICS for w in group} | set(FILLER))
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    return SPECIAL + PUNCTUATION + chars + [f"##{c}" for c in chars] + words


def make_tiny_base_model(directory: Path) -> Path:
    """Write a random BertModel (2 layers, hidden 64) and its fast WordPiece tokenizer; return the dir."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    if (directory / "config.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def synthetic_tickets(labels: list[str], per_label: int = 24, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs: each label's texts mention its own topic words amid shared filler."""
    rng = random.Random(seed)
    rows = []
    for index, label in enumerate(sorted(labels)):
        topic = TOPICS[index % len(TOPICS)]
        for _ in range(per_label):
            words = rng.sample(FILLER, 4) + rng.sample(topic, 2)
            rng.shuffle(words)
            rows.append((" ".join(words), label))
    return rows


def tiny_config(base_model: Path, **overrides):
    """A TrainConfig that trains the tiny model quickly and deterministically."""
    from finetune.ml.config import TrainConfig

    values = dict(
        base_model=str(base_model),
        epochs=10,
        lr=2e-3,
        distil_epochs=10,
        distil_lr=2e-3,
        batch_size=8,
        min_per_team=4,
        patience=0,
        threads=1,
        seed=0,
        min_teacher_steps=0,
        min_distil_steps=0,
        student_layers=2,
        # Off here, so the shared tiny runs train as they did; test_ml_augment.py runs it on.
        augment_copies=0,
    )
    return TrainConfig(**{**values, **overrides})


# A model that has barely moved from its random start: its logits are near-ties, and int8
# rounding genuinely flips the top label of some texts (the parity gate's real failure mode).
BARELY_TRAINED = dict(
    epochs=1,
    distil_epochs=1,
    lr=1e-9,
    distil_lr=1e-9,
    head_init="random",
    teachers=1,
    baseline=False,
    min_teacher_steps=0,
    min_distil_steps=0,
    # The near-ties below were found among the labelled tickets' parity texts alone.
    no_intent=False,
)
# Eight teams and seed 4 put enough near-ties among the parity texts to fall below 97 %.
NEAR_TIE_LABELS = [f"team{i}" for i in range(8)]
NEAR_TIE_SEED = 4


def tiny_examples(labels: list[str], per_label: int = 24, seed: int = 0):
    """Labelled examples (splits assigned by the pipeline) and unlabelled texts for distillation."""
    from finetune.ml.pipeline import LabelledText

    examples = [LabelledText(text, label, "") for text, label in synthetic_tickets(labels, per_label, seed)]
    unlabelled = [text for text, _ in synthetic_tickets(labels, per_label // 2, seed + 1)]
    return examples, unlabelled


_ARTIFACT_CACHE: dict[tuple[str, ...], Path] = {}


def make_tiny_artifact(directory: Path, labels: list[str], *, name: str = "1", hybrid: bool = False) -> Path:
    """Run the real pipeline on the tiny model and synthetic tickets; publish to directory/name.

    Deterministic; the first call per label set trains (seconds), later calls copy the result.
    The student serves unless `hybrid`: on these separable tickets the hybrid's TF-IDF term makes
    nearly every answer certain, which the router's threshold and reason tests cannot use.
    """
    from finetune.ml.artifacts import publish
    from finetune.ml.pipeline import run_pipeline

    key = (*sorted(labels), f"hybrid={hybrid}")
    if key not in _ARTIFACT_CACHE:
        root = Path(tempfile.mkdtemp(prefix="tiny-artifact-"))
        base = make_tiny_base_model(root / "base")
        examples, unlabelled = tiny_examples(sorted(labels))
        run_pipeline(
            config=tiny_config(base, hybrid=hybrid), examples=examples, unlabelled=unlabelled, work_dir=root / "out"
        )
        _ARTIFACT_CACHE[key] = root / "out"
    store = Path(directory)
    store.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
    shutil.rmtree(tmp)
    shutil.copytree(_ARTIFACT_CACHE[key], tmp)
    return publish(tmp, store, name)


def install_active_tiny_version(store: Path, labels: list[str]):
    """make_tiny_artifact published into ``store`` under a new ModelVersion's number, made the active version."""
    import uuid

    from finetune.ml.artifacts import verify_checksums
    from routing.models import ModelVersion

    version = ModelVersion.objects.create(artifact_dir=f"pending-{uuid.uuid4().hex}", sha256="")
    directory = make_tiny_artifact(store, labels, name=str(version.pk))
    version.artifact_dir, version.sha256 = str(version.pk), verify_checksums(directory)
    version.labels, version.state = labels, ModelVersion.State.ACTIVE
    version.save()
    return version


def register_artifact(directory: Path, name: str, state: str = "candidate"):
    """A ModelVersion for an artifact already in the store (its files edited in place): checksums
    written again, labels read from it."""
    import json

    from finetune.ml.artifacts import write_checksums
    from routing.models import ModelVersion

    sha = write_checksums(directory)
    labels = json.loads((Path(directory) / "labels.json").read_text())
    return ModelVersion.objects.create(artifact_dir=name, state=state, sha256=sha, labels=labels)
