"""`simclr bench`: where a training step's time goes, on random images of the experiment's shape.

Times, in one process and on the same model: view generation, the model step (forward + backward + optimizer on
fixed views), the loss alone (forward + backward on fixed projections) and the full step (views + model step).
On CUDA the timings come from CUDA events; on CPU from the wall clock. Pipeline efficiency is model step / full
step: 1.0 means making the views costs nothing next to the model. With ``train.compile`` the model step is timed
both compiled and eager, side by side, and the speed-up and the one-off compile time are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from simclr.data import InMemoryImageDataset, TensorSplit
from simclr.errors import UserError
from simclr.runtime import Runtime, make_runtime, seed_everything
from simclr.schema import Experiment
from simclr.views import BatchedViews, resolve_views


class RandomImages(InMemoryImageDataset):
    """Stand-in data of a given shape (content does not change the timings)."""

    def __init__(self, image_size: int, count: int, defaults: dict[str, Any] | None = None):
        self.image_size = image_size
        self.class_names = []
        self._defaults = defaults or {}
        super().__init__(TensorSplit(torch.randint(0, 256, (count, 3, image_size, image_size), dtype=torch.uint8)))

    def augment_defaults(self) -> dict[str, Any]:
        return self._defaults


def _timer(runtime: Runtime) -> Callable[[Callable[[], Any]], float]:
    """Seconds one call of ``fn`` takes, measured so queued device work is counted."""
    if runtime.device.type == "cuda":

        def cuda_time(fn: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000

        return cuda_time

    def wall_time(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return wall_time


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    """Achieved bf16 matmul TFLOP/s on this device: the practical peak the model step is compared with."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    end.synchronize()
    return 2 * size**3 * repeats / (start.elapsed_time(end) / 1000) / 1e12


def run_bench(experiment: Experiment, steps: int = 20, warmup: int = 5, device: str | None = None) -> dict[str, Any]:
    from simclr.contracts import check_backbone_output, check_loss_output
    from simclr.model import build_model

    runtime = make_runtime(experiment.train, device)
    seed_everything(experiment.train.seed)
    try:
        dataset = experiment.data.dataset.build()
        image_size, defaults = dataset.image_size, dataset.augment_defaults()
    except UserError:
        raise UserError(
            f"simclr bench needs the image size of dataset '{experiment.data.dataset.name}', which could not be "
            "built here (its files are missing?); bench random images of the same size instead, e.g. "
            "--set 'data.dataset={name: synthetic, image_size: 32}'"
        ) from None
    batch = experiment.data.batch_size
    images = RandomImages(image_size, batch, defaults).pretrain_tensor().to(runtime.device)
    views = BatchedViews(resolve_views(experiment.data.augment, RandomImages(image_size, 1, defaults)))
    generator = torch.Generator(device=runtime.device)
    generator.manual_seed(0)
    model = runtime.place(build_model(experiment, image_size))
    check_backbone_output(model.backbone, experiment.model.backbone.name, image_size, runtime)
    forward = torch.compile(model) if experiment.train.compile else model
    loss_fn = experiment.loss.build().to(runtime.device)
    optimizer = experiment.optimizer.build(model)
    scaler = runtime.grad_scaler()

    def make_views() -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = views.pair(images, generator)
        return runtime.place(v1), runtime.place(v2)

    fixed = make_views()

    def model_step(v1: torch.Tensor, v2: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor] = forward):
        with runtime.autocast():
            z1, z2 = network(torch.cat([v1, v2])).chunk(2)
        loss = loss_fn(z1, z2)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    with torch.no_grad(), runtime.autocast():
        z_fixed = [z.detach().float() for z in model(torch.cat(fixed)).chunk(2)]

    loss = loss_fn(*(z.clone().requires_grad_() for z in z_fixed))
    check_loss_output(loss, loss_fn, experiment.loss.name)

    def loss_only() -> None:
        z1, z2 = (z.clone().requires_grad_() for z in z_fixed)
        loss_fn(z1, z2).backward()

    parts: dict[str, Callable[[], Any]] = {
        "views": make_views,
        "model_step": lambda: model_step(*fixed),
        "loss": loss_only,
        "full_step": lambda: model_step(*make_views()),
    }
    timer = _timer(runtime)
    compile_seconds = None
    if experiment.train.compile:
        parts["model_step_eager"] = lambda: model_step(*fixed, network=model)
        compile_seconds = timer(parts["model_step"])  # the first call compiles
    for fn in parts.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(steps):
        for name, fn in parts.items():
            samples[name].append(timer(fn))
    seconds = {name: statistics.median(values) for name, values in samples.items()}
    with FlopCounterMode(display=False) as counter:
        model_step(*fixed, network=model)  # counted eagerly: a compiled graph hides its operations
    flops = counter.get_total_flops()
    result: dict[str, Any] = {
        "device": str(runtime.device),
        "device_name": torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "cpu",
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "compile": experiment.train.compile,
        "backbone": experiment.model.backbone.name,
        "loss": experiment.loss.name,
        "image_size": image_size,
        "batch_size": batch,
        "steps": steps,
        "seconds": seconds,
        "share_of_full_step": {name: seconds[name] / seconds["full_step"] for name in ("views", "model_step", "loss")},
        "images_per_sec": batch / seconds["full_step"],
        "model_only_images_per_sec": batch / seconds["model_step"],
        "pipeline_efficiency": seconds["model_step"] / seconds["full_step"],
        "step_tflop": flops / 1e12,
        "achieved_tflops": flops / seconds["model_step"] / 1e12,
    }
    if compile_seconds is not None:
        result["compile_seconds"] = compile_seconds
        result["compile_speedup"] = seconds["model_step_eager"] / seconds["model_step"]
    if runtime.device.type == "cuda":
        result["matmul_bf16_tflops"] = matmul_tflops(runtime.device)
        result["fraction_of_matmul"] = result["achieved_tflops"] / result["matmul_bf16_tflops"]
    return result
