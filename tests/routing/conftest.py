"""Fixtures for the router and API tests: tiny real int8 ONNX artifacts in a per-test model store.

The artifacts are built once per session (a random 2-layer, 64-wide BERT exported and
quantized exactly as the pipeline does) in the serving format the router reads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from django.core.cache import cache

from routing import router as router_module
from routing.models import ModelVersion

WORDS = (
    "card refund charge payment invoice bill money account login password email reset profile "
    "crash error bug broken app slow page button screen update the my i a to is not was why how "
    "can cannot do does help please need want when where what after before again today yesterday"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Two label sets, so every prediction shows which version answered it.
LABELS_V1 = ["accounts", "billing", "bugs"]
LABELS_V2 = ["accounts", "billing"]


def _export_tiny_model(directory: Path, labels: list[str], *, seed: int) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    (directory / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"))
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128, num_labels=len(labels),
    )
    model = BertForSequenceClassification(config).eval()

    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            token_type_ids = torch.zeros_like(input_ids)
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]])
    mask = (ids != 0).long()
    fp32 = directory / "fp32.onnx"
    torch.onnx.export(
        LogitsOnly().eval(), (ids, mask), str(fp32), dynamo=False, opset_version=17,
        input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "logits": {0: "batch"}},
    )
    quantize_dynamic(str(fp32), str(directory / "model.onnx"), weight_type=QuantType.QInt8)
    fp32.unlink()


def write_checksums(directory: Path) -> str:
    """sha256sum-format ``checksums`` for every other file; returns that file's sha256."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(directory).as_posix()}\n"
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "checksums"
    ]
    (directory / "checksums").write_text("".join(lines), encoding="utf-8")
    return hashlib.sha256((directory / "checksums").read_bytes()).hexdigest()


def build_artifact(directory: Path, labels: list[str], *, seed: int, temperature: float) -> Path:
    directory.mkdir(parents=True)
    _export_tiny_model(directory, labels, seed=seed)
    (directory / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    serving = {"format": 1, "max_length": 64, "temperature": temperature, "triage_threshold": 0.5, "labels": labels}
    (directory / "serving.json").write_text(json.dumps(serving), encoding="utf-8")
    (directory / "metrics.json").write_text(json.dumps({"int8": {"accuracy": 0.9}}), encoding="utf-8")
    (directory / "card.md").write_text("# Tiny test model\n", encoding="utf-8")
    write_checksums(directory)
    return directory


@pytest.fixture(scope="session")
def artifact_sources(tmp_path_factory) -> dict[str, Path]:
    """Two built artifacts: v1 (3 labels, T=0.5) and v2 (2 labels, T=1.0)."""
    root = tmp_path_factory.mktemp("artifacts")
    return {
        "v1": build_artifact(root / "v1", LABELS_V1, seed=1, temperature=0.5),
        "v2": build_artifact(root / "v2", LABELS_V2, seed=2, temperature=1.0),
    }


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def store(settings, tmp_path) -> Path:
    """An empty model store; the router re-checks the active version on every call."""
    path = tmp_path / "store"
    path.mkdir()
    settings.SWITCHBOARD = {"MODEL_STORE": str(path), "ROUTER_RELOAD_SECONDS": 0, "TRIAGE_THRESHOLD": 0.5}
    return path


@pytest.fixture
def install_version(store, artifact_sources):
    """Copy a built artifact into the store and register it: install_version("v1", state="active")."""
    counter = iter(range(1, 1000))

    def install(source: str, *, state: str = ModelVersion.State.CANDIDATE, **fields) -> ModelVersion:
        name = f"{source}-{next(counter)}"
        target = store / name
        shutil.copytree(artifact_sources[source], target)
        sha = hashlib.sha256((target / "checksums").read_bytes()).hexdigest()
        labels = json.loads((target / "labels.json").read_text())
        fields = {"sha256": sha, "labels": labels, **fields}
        return ModelVersion.objects.create(artifact_dir=name, state=state, **fields)

    return install


@pytest.fixture
def router(monkeypatch) -> router_module.Router:
    """A fresh per-test Router installed as this process's get_router()."""
    fresh = router_module.Router()
    monkeypatch.setattr(router_module, "_ROUTER", fresh)
    return fresh


def _client_for(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(plain_user):
    """An APIClient authenticated by a (non-staff) user's token."""
    return _client_for(plain_user)


@pytest.fixture
def staff_api(staff_user):
    """An APIClient authenticated by a staff user's token."""
    return _client_for(staff_user)


@pytest.fixture
def ingest_api(plain_user):
    """An APIClient for a non-staff user given the ticket-ingest permission (an integration)."""
    from django.contrib.auth.models import Permission

    plain_user.user_permissions.add(Permission.objects.get(content_type__app_label="finetune", codename="add_ticket"))
    return _client_for(plain_user)
