"""Training device selection: a CUDA GPU when the worker has one, else the CPU (torch.cuda mocked here)."""

from __future__ import annotations

import pytest
import torch

from finetune.ml.config import TrainConfig, training_device
from finetune.ml.data import autocast
from finetune.ml.errors import ConfigError, PipelineError
from finetune.ml.pipeline import run_pipeline


@pytest.fixture
def gpu(monkeypatch):
    """A process that sees a CUDA GPU with bfloat16 (an Ampere or newer card)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_takes_the_gpu_when_there(gpu):
    """ "auto" is cuda where a GPU is seen; "cpu" and "cuda" are kept as asked."""
    assert [training_device(d) for d in ("auto", "cpu", "cuda")] == ["cuda", "cpu", "cuda"]


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    """Without a GPU "auto" is the CPU; "cuda" is kept (the web process validating it may have none)."""
    assert [training_device(d) for d in ("auto", "cpu", "cuda")] == ["cpu", "cpu", "cuda"]


def test_an_unknown_device_is_refused():
    """A device other than auto, cpu or cuda is a config error naming the choices."""
    with pytest.raises(ConfigError, match="'auto', 'cpu' or 'cuda'"):
        TrainConfig(base_model="unused", device="tpu")


def test_precision_follows_the_device(gpu, monkeypatch):
    """On a GPU with bfloat16, precision "auto" trains under bf16; on one without it, in float32."""
    assert (TrainConfig(base_model="unused").device, TrainConfig(base_model="unused").precision) == ("cuda", "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert TrainConfig(base_model="unused").precision == "fp32"
    assert TrainConfig(base_model="unused", device="cpu").device == "cpu"


def test_autocast_runs_on_the_training_device():
    """The autocast context is the device's own (cuda autocast for a GPU run, cpu otherwise)."""
    assert autocast(True, "cpu").device == "cpu"
    with pytest.warns(UserWarning):  # this CPU-only torch: built, but disabled
        assert autocast(True, torch.device("cuda", 0)).device == "cuda"


def test_a_cuda_run_on_a_worker_without_a_gpu_fails_clearly(no_gpu, tmp_path):
    """A run asking for cuda on a worker that sees no GPU fails before any work, saying so."""
    config = TrainConfig(base_model=str(tmp_path), device="cuda")
    with pytest.raises(PipelineError, match="sees no CUDA GPU"):
        run_pipeline(config=config, examples=[], unlabelled=[], work_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.django_db
def test_the_training_device_setting_is_the_default(gpu, settings, tmp_path):
    """SWITCHBOARD["TRAINING_DEVICE"] is a run's device unless its config names one."""
    from finetune.training import training_config_build

    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "BASE_MODEL": str(tmp_path), "TRAINING_DEVICE": "cpu"}
    assert training_config_build().device == "cpu"
    assert training_config_build(overrides={"device": "auto"}).device == "cuda"
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "TRAINING_DEVICE": "auto"}
    assert training_config_build().device == "cuda"
