"""Learning-rate schedule: linear warm-up, then cosine decay to 0 (or flat), stepped every iteration.

The schedule is a pure function of the global step, so it needs no state of its own in a checkpoint.
"""

from __future__ import annotations

import math

import torch


def batch_scale(lr_scaling: str, global_batch: int) -> float:
    """Multiplier of the configured lr: none -> 1, linear -> B/256, sqrt -> sqrt(B)."""
    if lr_scaling == "linear":
        return global_batch / 256
    if lr_scaling == "sqrt":
        return math.sqrt(global_batch)
    return 1.0


def lr_factor(step: int, total_steps: int, warmup_steps: int, decay: str = "cosine") -> float:
    """Fraction of the peak lr at 0-based iteration ``step``.

    Warm-up rises linearly to 1 over ``warmup_steps`` (the first step already gets 1/warmup_steps, never 0);
    then cosine decay reaches 0 at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """Sets every param group's lr to ``base_lr * batch_scale * lr_factor(step)``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        decay: str,
        scale: float,
    ):
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.warmup_steps = min(warmup_steps, total_steps)
        self.decay = decay
        self.peak_lrs = [group["lr"] * scale for group in optimizer.param_groups]

    def set_step(self, step: int) -> float:
        """Apply the lr of iteration ``step``; returns the first group's lr (for logging)."""
        factor = lr_factor(step, self.total_steps, self.warmup_steps, self.decay)
        for group, peak in zip(self.optimizer.param_groups, self.peak_lrs, strict=True):
            group["lr"] = peak * factor
        return self.optimizer.param_groups[0]["lr"]
