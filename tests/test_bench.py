"""`simclr bench` and the device-resident data path."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest
import torch
import yaml
from conftest import ROOT, run_simclr
from test_trainer import TINY, tiny, weights

from simclr.bench import run_bench
from simclr.trainer import Trainer
from simclr.views import BatchedViews


def test_bench_json_has_every_field(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(TINY))
    result = run_simclr("bench", str(path), "--steps", "2", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    assert set(bench["seconds"]) == {"views", "model_step", "loss", "full_step"}
    assert all(seconds > 0 for seconds in bench["seconds"].values())
    assert set(bench["share_of_full_step"]) == {"views", "model_step", "loss"}
    full, model = bench["seconds"]["full_step"], bench["seconds"]["model_step"]
    assert bench["images_per_sec"] == pytest.approx(32 / full)
    assert bench["pipeline_efficiency"] == pytest.approx(model / full)
    assert bench["step_tflop"] > 0 and bench["achieved_tflops"] > 0
    assert (bench["device"], bench["batch_size"], bench["image_size"]) == ("cpu", 32, 16)


def test_bench_with_compile_times_the_compiled_and_the_eager_step_side_by_side(monkeypatch):
    compiled_calls = []

    class Compiled(torch.nn.Module):
        """Stands in for what torch.compile returns (a real compile takes about a minute on this CPU)."""

        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            compiled_calls.append(len(x))
            return self.model(x)

    monkeypatch.setattr(torch, "compile", Compiled)
    result = run_bench(tiny(["train.compile=true"]), steps=3, warmup=1, device="cpu")
    seconds = result["seconds"]
    assert set(seconds) == {"views", "model_step", "loss", "full_step", "model_step_eager"}
    assert result["compile"] is True and result["compile_seconds"] > 0
    assert result["compile_speedup"] == pytest.approx(seconds["model_step_eager"] / seconds["model_step"])
    # the compiled module runs the model step and the full step (a first compiling call, then 1 warm-up and 3
    # timed calls each); the eager step, the fixed projections and the FLOP count use the plain model
    assert compiled_calls == [64] * (1 + 2 * (1 + 3))
    plain = run_bench(tiny(), steps=1, warmup=0, device="cpu")
    assert "compile_speedup" not in plain and "model_step_eager" not in plain["seconds"]


def test_bench_checks_the_loss_contract_too(monkeypatch):
    from simclr.errors import PluginError
    from simclr.plugins.losses.nt_xent import NTXent

    monkeypatch.setattr(NTXent, "forward", lambda self, z1, z2: (z1 - z2).pow(2).sum(dim=1))  # per sample
    with pytest.raises(PluginError, match=r"loss 'nt_xent' .* returned a tensor of shape \[32\]"):
        run_bench(tiny(), steps=1, warmup=0, device="cpu")


def test_bench_rejects_bad_arguments(tmp_path):
    for flags, given in ((["--steps", "0"], "(got 0 and 5)"), (["--warmup", "0"], "(got 20 and 0)")):
        result = run_simclr("bench", "configs/quickstart.yaml", *flags)
        assert result.returncode == 2 and f"--steps and --warmup must be at least 1 {given}" in result.stderr


def test_resident_path_gives_the_batched_views_of_a_device_side_shuffle(tmp_path):
    """The device-resident stream = a seeded device permutation + BatchedViews.pair with the stream's generator."""
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    stream = trainer.stream
    assert stream.path == "resident"
    view1, view2 = next(iter(stream.epoch(1)))
    shuffle = torch.Generator().manual_seed(trainer.experiment.train.seed + 1)
    order = torch.randperm(stream.size, generator=shuffle)
    generator = torch.Generator().manual_seed(trainer.experiment.train.seed * 1_000_003)
    images = trainer.dataset.pretrain_tensor()[order[: stream.batch]]
    expected1, expected2 = BatchedViews(stream.settings).pair(images, generator)
    assert torch.equal(view1, expected1) and torch.equal(view2, expected2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_never_synchronises(tmp_path):
    trainer = Trainer(tiny(["train.device=cuda"]), tmp_path / "run", show_progress=False)
    views = next(iter(trainer.stream.epoch(0)))
    trainer._step(*views)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for views in trainer.stream.epoch(1):
            trainer._step(*views)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_trains_resumes_from_a_cpu_checkpoint_and_evaluates(tmp_path, caplog):
    """The CUDA defaults end to end: device-resident data, bf16, channels_last, fused optimizer, the kNN monitor,
    checkpoints; a run started on the CPU resumed on the GPU; the evaluation on the GPU."""
    from simclr.evaluate import evaluate_run

    run = tmp_path / "run"
    Trainer(tiny(["train.device=cpu", "train.epochs=1"]), run, show_progress=False).fit()
    with caplog.at_level("WARNING", logger="simclr"):
        resumed = Trainer(
            tiny(["train.device=cuda", "train.epochs=3", "train.knn_monitor_every=1"]),
            run,
            resume=True,
            show_progress=False,
        )
    assert "the views continue from a new stream" in caplog.text
    runtime = resumed.runtime
    assert (resumed.stream.path, runtime.precision, runtime.channels_last) == ("resident", "bf16", True)
    resumed.fit()
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    knn = [r["knn_top1"] for r in epochs if r["type"] == "epoch" and "knn_top1" in r]
    assert len(knn) == 2 and all(0 <= value <= 100 for value in knn)
    result = evaluate_run(run, device="cuda", baseline=False, ks=[1], progress=False)
    assert result["epoch"] == 3 and 0 <= result["linear"]["top1"] <= 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "overrides, path",
    [
        (["data.device_resident=never"], "loader"),  # pinned host batches, augmented on the GPU
        (["data.augment.backend=cpu", "data.num_workers=1"], "cpu"),  # augmented in workers, copied over
        (["train.precision=fp16"], "resident"),  # GradScaler handing its scale to the fused Adam
        (["train.precision=fp16", "optimizer={name: lars, lr: 0.3}"], "resident"),  # GradScaler, unfused LARS
        (["model.sync_batchnorm=true", "train.channels_last=false"], "resident"),
    ],
)
def test_cuda_trains_on_each_data_path_and_precision(tmp_path, overrides, path):
    trainer = Trainer(tiny(["train.device=cuda", "train.epochs=1", *overrides]), tmp_path / "run", show_progress=False)
    assert trainer.stream.path == path
    before = weights(trainer.model)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


@pytest.mark.slow
def test_gpu_check_script_falls_back_to_the_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU fallback")
    (tmp_path / "summary.json").write_text('{"bench-from-an-earlier-check": {}}')
    (tmp_path / "bench-resnet18-96.json").write_text("{}")
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {f"bench-{b}-{s}" for b in ("resnet18", "resnet50") for s in (16, 32)}
    assert all(entry["images_per_sec"] > 0 and entry["epoch_seconds"] > 0 for entry in summary.values())
    assert not (tmp_path / "bench-resnet18-96.json").exists()


def test_gpu_check_stops_when_torch_cannot_use_the_gpu_that_nvidia_smi_lists(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine where torch sees no GPU")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 1
    assert "nvidia-smi lists a GPU but torch cannot use it" in result.stdout
    assert not (tmp_path / "out" / "summary.json").exists() and not (tmp_path / "out" / "tests.log").exists()


def test_a_failing_gpu_check_bench_leaves_the_others_and_a_summary(tmp_path, monkeypatch):
    import sys

    benches = load_benchmark_script("gpu_check_benches")
    measured = []

    def bench(backbone, size, batch, compile_model, steps, warmup):
        if backbone == "resnet50":
            raise RuntimeError("out of memory")
        measured.append((backbone, size))
        return {
            "device_name": "cpu",
            "batch_size": batch,
            "image_size": size,
            "images_per_sec": 100.0,
            "pipeline_efficiency": 0.9,
            "achieved_tflops": 0.1,
        }

    monkeypatch.setattr(benches, "bench", bench)
    monkeypatch.setattr(sys, "argv", ["gpu_check_benches.py", str(tmp_path)])
    assert benches.main() == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert measured == [("resnet18", 16), ("resnet18", 32)]
    assert summary["bench-resnet50-16"] == {"error": "RuntimeError: out of memory"}
    assert summary["bench-resnet18-32"]["images_per_sec"] == 100.0
    assert summary["bench-resnet18-32"]["epoch_seconds"] == 500.0  # CIFAR-10's 50,000 images at 100 images/s


def load_benchmark_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("precision, layout", [("fp32", "framework"), ("bf16", "framework"), ("fp32", "contiguous")])
def test_the_reference_loop_computes_in_the_frameworks_precision(tmp_path, monkeypatch, precision, layout):
    """compare_reference's plain loop takes the framework's autocast (and, unless told otherwise, its memory
    format), so that on a GPU the ratio is not bf16 against strict float32; its loss stays float32 and its
    weights move."""
    import sys

    reference = load_benchmark_script("compare_reference")
    args = ["compare_reference.py", "--image-size", "16", "--batch", "8", "--steps", "1", "--rounds", "1"]
    args += ["--backbone", "small_resnet", "--precision", precision, "--json", str(tmp_path / "result.json")]
    args += ["--reference-layout", layout]
    seen, layouts = [], []
    original = reference.time_reference

    def recording(loader, model, optimizer, runtime, channels_last):
        hook = model.register_forward_pre_hook(
            lambda _, inputs: (
                seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
                or layouts.append(inputs[0].is_contiguous(memory_format=torch.channels_last))
            )
        )
        before = [p.detach().clone() for p in model.parameters()]
        rate = original(loader, model, optimizer, runtime, channels_last)
        hook.remove()
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        return rate

    monkeypatch.setattr(reference, "time_reference", recording)
    monkeypatch.setattr(sys, "argv", args)
    reference.main()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["precision"] == precision and result["median_ratio"] > 0
    assert set(seen) == {torch.bfloat16 if precision == "bf16" else None}
    expected = result["channels_last"] and layout == "framework"
    assert result["reference_channels_last"] is expected and set(layouts) == {expected}
