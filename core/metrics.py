"""On-device accumulation of the step metrics, read back to the host once per log interval.

Between two reads nothing here synchronises with the device: sums, the count of finite steps and the last finite
loss are kept as tensors, so a non-finite loss is still pinned to the exact step where it appeared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Interval:
    """What one read-back gives: mean metrics over the interval, and where (if anywhere) the loss went bad."""

    means: dict[str, float]
    steps: int
    first_bad_offset: int | None
    last_finite_loss: float | None


class MetricTracker:
    def __init__(self, device: torch.device):
        self.device = device
        self.names: list[str] | None = None
        self._reset()

    def _reset(self) -> None:
        self.sums: torch.Tensor | None = None
        self.steps = 0
        self.finite_steps = torch.zeros((), device=self.device)
        self.all_finite = torch.ones((), dtype=torch.bool, device=self.device)
        self.last_finite = torch.full((), float("nan"), device=self.device)

    def update(self, loss: torch.Tensor, diagnostics: dict[str, torch.Tensor]) -> None:
        if self.names is None:
            self.names = ["loss", *diagnostics]
        loss = loss.detach().float()
        values = torch.stack([loss, *(diagnostics[n].detach().float().reshape(()) for n in self.names[1:])])
        self.sums = values if self.sums is None else self.sums + values
        finite = torch.isfinite(loss)
        self.all_finite = self.all_finite & finite
        self.finite_steps = self.finite_steps + self.all_finite.float()
        self.last_finite = torch.where(self.all_finite, loss, self.last_finite)
        self.steps += 1

    def read(self) -> Interval:
        """Read the interval's numbers back (one device sync) and start a new interval."""
        if self.sums is None:
            return Interval({}, 0, None, None)
        host = torch.cat([self.sums, torch.stack([self.finite_steps, self.last_finite])]).tolist()
        sums, (finite_steps, last_finite) = host[:-2], host[-2:]
        steps = self.steps
        means = {name: value / steps for name, value in zip(self.names or [], sums, strict=True)}
        bad = None if finite_steps == steps else int(finite_steps)
        self._reset()
        return Interval(means, steps, bad, None if last_finite != last_finite else last_finite)


class EpochMeter:
    """One epoch's step-weighted metric totals, steps and seconds, with the part trained before an interruption in
    its middle (``carried``: the checkpoint's ``epoch_progress``), and where the current log interval started."""

    def __init__(self, carried: dict[str, Any] | None, global_step: int):
        carried = carried or {}
        self.totals: dict[str, float] = dict(carried.get("totals", {}))
        self.steps: int = carried.get("steps", 0)
        self._earlier_seconds: float = carried.get("seconds", 0.0)
        self._started = self.interval_start = time.perf_counter()
        self.interval_first_step = global_step

    def add_interval(self, record: dict[str, Any], steps: int, global_step: int) -> None:
        """Add a read-back interval's means, weighted by its ``steps``, and start the next interval."""
        for key, value in record.items():
            if isinstance(value, float) and key not in ("lr", "images_per_sec"):
                self.totals[key] = self.totals.get(key, 0.0) + value * steps
        self.steps += steps
        self.interval_start, self.interval_first_step = time.perf_counter(), global_step

    def seconds(self) -> float:
        """The epoch's training time so far, the part before an interruption included."""
        return self._earlier_seconds + time.perf_counter() - self._started

    def means(self) -> dict[str, float]:
        return {key: total / max(self.steps, 1) for key, total in self.totals.items()}

    def progress(self) -> dict[str, Any]:
        """What a checkpoint written in the middle of the epoch keeps, for the resumed part to carry on."""
        return {"totals": self.totals, "steps": self.steps, "seconds": self.seconds()}
