"""Where and how a run executes: device, precision, seeding, and the torchrun process group."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from simclr.errors import UserError
from simclr.schema import DEVICE_CHOICES, DEVICE_NAME, TrainConfig

log = logging.getLogger("simclr")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


Placeable = TypeVar("Placeable", torch.Tensor, torch.nn.Module)


@dataclass
class Runtime:
    device: torch.device
    precision: str
    channels_last: bool
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the model computes in: autocast's, or float32."""
        return DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=DTYPES[self.precision])

    def place(self, x: Placeable) -> Placeable:
        """A module or a batch of images on this device, in the channels-last memory format where the run uses it
        (the model and its inputs must agree)."""
        if isinstance(x, torch.Tensor):  # asynchronous only from pinned memory, which stays valid until copied
            x = x.to(self.device, non_blocking=self.device.type == "cuda" and x.device.type == "cpu" and x.is_pinned())
        else:
            x = x.to(self.device)
        return x.to(memory_format=torch.channels_last) if self.channels_last else x

    def rng_kept(self) -> contextlib.AbstractContextManager:
        """A block whose random draws leave the CPU's and this device's generators as they were (a trial run)."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is active only for fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")


def check_device_name(name: str, source: str) -> None:
    """Raise unless ``name`` is one a device may be given as (``source``: where it was given, for the message);
    whether that device is here is :func:`resolve_device`'s question."""
    if not DEVICE_NAME.match(name):
        raise UserError(f"{source} '{name}' is not a device; use {DEVICE_CHOICES}")


def resolve_device(
    name: str, local_rank: int = 0, local_world_size: int = 1, source: str = "train.device"
) -> torch.device:
    """The device of this process: under torchrun, ``cuda`` (or ``auto``) is the GPU of its LOCAL_RANK.
    ``local_world_size`` is the number of processes on this node; ``source`` is where ``name`` was given
    (``train.device`` or ``--device``), for the messages."""
    check_device_name(name, source)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{source} is '{name}' but CUDA is not available here; use cpu or auto")
        count = torch.cuda.device_count()
        if name == "cuda":
            if local_rank >= count:
                raise UserError(
                    f"this process has LOCAL_RANK {local_rank} but only {count} GPU(s) are visible; start at most "
                    f"{count} processes per node (--nproc, torchrun --nproc_per_node)"
                )
            return torch.device("cuda", local_rank)
        if local_world_size > 1:
            raise UserError(
                f"{source} '{name}' would put all {local_world_size} processes of this node on one GPU; under "
                "torchrun use cuda (or auto), which gives each process the GPU of its LOCAL_RANK, and choose the "
                "GPUs with CUDA_VISIBLE_DEVICES"
            )
        index = int(name.split(":")[1])
        if index >= count:
            raise UserError(f"{source} is '{name}' but only {count} GPU(s) are visible")
        return torch.device(name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{source} is 'mps' but MPS is not available here; use cpu or auto")
    return torch.device(name)


def auto_precision(device: torch.device) -> str:
    """bf16 on a GPU that computes it natively (NVIDIA's Ampere and later, compute capability 8; ROCm's); fp16 (with
    GradScaler) on an older one, where torch would emulate bf16 slowly; fp32 elsewhere. Asked of ``device`` itself,
    which need not be the current one yet."""
    if device.type != "cuda":
        return "fp32"
    native = bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    return "bf16" if native else "fp16"


#: CPUs whose convolutions (oneDNN) run faster on channels-last tensors: measured on this project's x86-64
#: machine, a ResNet-18 training step at 32 px took 3.0 s channels-last against 4.8 s contiguous
CHANNELS_LAST_CPUS = ("x86_64", "amd64")


def default_channels_last(device: torch.device) -> bool:
    """``train.channels_last`` left unset: on for CUDA and for x86-64 CPUs, where it was measured faster; off
    elsewhere (MPS, other CPUs), where it was not measured."""
    if device.type == "cpu":
        return platform.machine().lower() in CHANNELS_LAST_CPUS
    return device.type == "cuda"


def make_runtime(train: TrainConfig, device_override: str | None = None) -> Runtime:
    """Resolve device and precision; join the torchrun process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    source = "--device" if device_override else "train.device"
    device = resolve_device(device_override or train.device, local_rank, local_world_size, source)
    precision = auto_precision(device) if train.precision == "auto" else train.precision
    channels_last = train.channels_last if train.channels_last is not None else default_channels_last(device)
    if device.type == "cuda":
        # the current device too: CUDA events, caches and NCCL use it, not the tensors' device
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        # TF32 only for a float32 run: under bf16/fp16 autocast the model computes in half precision anyway,
        # and what stays float32 on purpose (the loss's similarities, the views' colour transforms) stays exact
        torch.backends.cuda.matmul.allow_tf32 = precision == "fp32"
        torch.backends.cudnn.allow_tf32 = precision == "fp32"
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, precision, channels_last, rank, world_size, local_rank)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Float32 matmuls and convolutions without TF32 inside (an evaluation after a float32 run with TF32 on
    gives the same numbers as a separate `simclr eval`); the previous settings are restored after. Also a
    decorator."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def free_memory(device: torch.device) -> None:
    """Give back the memory of objects just dropped (a finished run's model, optimizer state and device-resident
    data) before the next job on ``device`` needs it: an evaluation, or a sweep's next run."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and every GPU)."""
    random.seed(seed)
    torch.manual_seed(seed)


def shutdown(runtime: Runtime, together: bool = False) -> None:
    """Leave the process group. ``together``: first wait for every rank (the ranks stopped at the same step, so
    all of them get here), so that no rank tears down its connections while another still uses them; not after a
    failure on one rank, whose peers may never arrive."""
    if runtime.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
