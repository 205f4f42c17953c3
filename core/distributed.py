"""Collectives the training loop needs across torchrun ranks: a gather that carries gradients, a global
BatchNorm that works on every device, a gather of small per-rank states for the checkpoint, a gather of
shards for the kNN monitor, and :func:`together`, which stops every rank when one fails.

Gradient bookkeeping (why one step on W ranks equals one step on the whole batch): every rank gathers all
projections and computes the same full-batch loss L. The backward of the gather sums the W ranks' identical
gradients, so each rank receives W·dL/dz for its own rows; DDP then averages the parameter gradients over the W
ranks, which leaves exactly dL/dθ. The global BatchNorm's collective follows the same rule (its backward sums over
ranks), so the factor W is the same everywhere and DDP's average removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from simclr.errors import AnotherRankFailed, SimCLRError

T = TypeVar("T")


def world_size() -> int:
    """The number of ranks in the default process group (1 when there is none)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


#: torch 2.14 renamed all_gather_into_tensor (now deprecated) to all_gather_single; older torch has only the first
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums the gradient over ranks (all_reduce) and keeps this rank's rows.
    (torch.distributed.nn.functional.all_gather does the same but is deprecated.)"""

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:
        ctx.rows = z.shape[0]
        gathered = z.new_empty((world_size() * z.shape[0], *z.shape[1:]))
        _all_gather_single(gathered, z.contiguous())
        return gathered

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(z: Tensor) -> Tensor:
    """Every rank's ``z`` (the same shape on every rank) concatenated in rank order along dim 0; gradients flow
    back to the rank that owns each row, summed over the ranks that used it. Without a process group, ``z``."""
    if world_size() == 1:
        return z
    return _GatherWithGrad.apply(z)


def gather_shards(rows: Tensor, total: int) -> Tensor:
    """The rows of a ``total``-row set that the ranks split round-robin (rank r holds rows r, r+W, r+2W, ...),
    every rank's shard concatenated in rank order (a collective: every rank must call it). Shards differ in
    length by at most one, so each is padded to the longest for the all_gather and trimmed after. Without a
    process group, ``rows``."""
    ranks = world_size()
    if ranks == 1:
        return rows
    longest = -(-total // ranks)
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    gathered = rows.new_empty((ranks * longest, *rows.shape[1:]))
    _all_gather_single(gathered, padded)
    sizes = [len(range(rank, total, ranks)) for rank in range(ranks)]
    return torch.cat([gathered[rank * longest : rank * longest + size] for rank, size in enumerate(sizes)])


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (a collective: every rank must call it). Without a process group,
    ``[obj]``."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def together(action: Callable[[], T]) -> T:
    """``action()`` on every rank, then stop every rank when one failed (rank 0 finding the run locked by another
    process, or a callback built on rank 0 only being broken) with that rank's message, instead of leaving the
    others to fail in their next collective with a connection error as the only message. A collective: every
    rank must call it."""
    failure: BaseException | None = None
    result = None
    try:
        result = action()
    except BaseException as exc:
        failure = exc
    rank = dist.get_rank() if world_size() > 1 else 0
    reports = gather_objects(None if failure is None else failure_report(failure, rank))
    if failure is not None:
        raise failure
    for report in reports:
        if report is not None:
            raise AnotherRankFailed(*report)
    return result


def failure_report(failure: BaseException, rank: int) -> tuple[str, int]:
    """The message and exit status the other ranks stop with when ``failure`` stopped ``rank``: a simclr error's
    own (the same message on every rank), otherwise one that names the rank and the error."""
    if isinstance(failure, SimCLRError):
        return str(failure), failure.exit_code
    if isinstance(failure, KeyboardInterrupt):
        return "interrupted", 130
    return f"rank {rank} failed: {type(failure).__name__}: {failure}", 1


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch over all ranks, on any device
    (torch's SyncBatchNorm only runs on CUDA-like devices). Outside training, or without a process group, it is
    a plain BatchNorm; inputs are [N, C, *].

    Each rank sends its count, per-channel mean and sum of squared deviations (one all_gather, differentiable);
    the global mean and variance are combined from them (Chan et al.'s parallel formula), which avoids the
    cancellation of E[x²] − E[x]². Running statistics are updated like BatchNorm's, with the unbiased global
    variance, identically on every rank.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of shape [N, C, *], got {input.dim()}D")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not self.training or world_size() == 1:
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        x = input.float()
        count = x.numel() // channels
        local_mean = x.mean(dims)
        local_m2 = (x - local_mean.view(shape)).square().sum(dims)
        local = torch.cat([local_mean.new_full((1,), float(count)), local_mean, local_m2])
        stats = gather_with_grad(local).view(-1, local.shape[0])
        counts, means, m2s = stats[:, :1], stats[:, 1 : 1 + channels], stats[:, 1 + channels :]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (m2s.sum(0) + (counts * (means - mean).square()).sum(0)) / total
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * total / (total - 1))
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), momentum)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`GlobalBatchNorm` that shares its parameters
    and buffers (returns the new layer when ``module`` itself is one)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        if module.track_running_stats:
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_global_batchnorm(child))
    return module


def global_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """The paper's global BN: torch's SyncBatchNorm (fused kernels) on CUDA, :class:`GlobalBatchNorm` on
    other devices (CPU with gloo, MPS, ...)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_global_batchnorm(module)
