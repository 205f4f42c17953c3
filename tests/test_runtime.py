"""Device, precision and TF32 choices of a run, including the CUDA-only ones (with CUDA faked where needed)."""

from __future__ import annotations

import pytest
import torch

from simclr.errors import UserError
from simclr.runtime import exact_float32, make_runtime, resolve_device
from simclr.schema import TrainConfig


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """torch believes two GPUs are visible; set_device calls are recorded, not made."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # two H100s
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    for flags in (torch.backends.cuda.matmul, torch.backends.cudnn):  # restored after the test
        monkeypatch.setattr(flags, "allow_tf32", flags.allow_tf32)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    return current


def test_each_torchrun_process_takes_the_cuda_device_of_its_local_rank(two_fake_gpus):
    assert resolve_device("cuda", local_rank=1, local_world_size=2) == torch.device("cuda", 1)
    assert resolve_device("auto", local_rank=0, local_world_size=2) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="LOCAL_RANK 2 but only 2 GPU"):
        resolve_device("cuda", local_rank=2, local_world_size=3)
    with pytest.raises(UserError, match="would put all 2 processes of this node on one GPU"):
        resolve_device("cuda:1", local_rank=0, local_world_size=2)
    assert resolve_device("cuda:1", local_rank=0, local_world_size=1) == torch.device("cuda", 1)  # one per node
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="only 2 GPU"):
        resolve_device("cuda:2")


def test_a_cuda_run_makes_its_device_current_and_uses_tf32_only_in_float32(two_fake_gpus):
    runtime = make_runtime(TrainConfig(device="cuda:1"))
    assert two_fake_gpus == [torch.device("cuda", 1)]  # CUDA events and caches then follow the run's GPU
    assert runtime.precision == "bf16" and runtime.channels_last and torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    make_runtime(TrainConfig(device="cuda", precision="fp32"))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with exact_float32():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_auto_precision_follows_the_runs_own_gpu(two_fake_gpus, monkeypatch):
    """A V100 (compute capability 7: bf16 only by slow emulation) beside an H100 (9): each run decides by its own
    GPU, not by the current one, whichever ran before."""
    capability = {0: (7, 0), 1: (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability[torch.device(device).index])
    monkeypatch.setattr(torch.version, "hip", None)
    assert make_runtime(TrainConfig(device="cuda:0")).precision == "fp16"
    assert make_runtime(TrainConfig(device="cuda:1")).precision == "bf16"
    assert make_runtime(TrainConfig(device="cuda:0")).precision == "fp16"
    assert make_runtime(TrainConfig(device="cuda:0", precision="bf16")).precision == "bf16"  # asked for: kept


def test_a_cpu_run_touches_no_cuda_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("set_device on a CPU run"))
    runtime = make_runtime(TrainConfig(device="cpu"))
    assert runtime.device == torch.device("cpu") and runtime.precision == "fp32"


@pytest.mark.parametrize("machine, expected", [("x86_64", True), ("AMD64", True), ("arm64", False), ("aarch64", False)])
def test_channels_last_is_the_default_on_the_cpus_where_it_was_measured_faster(monkeypatch, machine, expected):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert make_runtime(TrainConfig(device="cpu")).channels_last is expected
    assert make_runtime(TrainConfig(device="cpu", channels_last=not expected)).channels_last is not expected


def test_a_device_that_is_not_here_is_named_where_it_was_given(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"^--device is 'cuda' but CUDA is not available here; use cpu or auto$"):
        make_runtime(TrainConfig(device="cpu"), device_override="cuda")
    with pytest.raises(UserError, match=r"^train.device is 'cuda:1' but CUDA is not available here"):
        make_runtime(TrainConfig(device="cuda:1"))
    with pytest.raises(UserError, match=r"^train.device is 'mps' but MPS is not available here; use cpu or auto$"):
        make_runtime(TrainConfig(device="mps"))
