"""A third-party simclr plugin: the `random_subset` miner keeps each negative pair with probability `fraction`,
and the `step_counter` callback prints the loss every `every` steps."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

import simclr


class RandomSubsetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fraction: float = Field(0.5, gt=0, le=1, description="probability of keeping each negative pair")


class RandomSubsetMiner:
    """Select a random subset of the negatives, ignoring similarities."""

    def __init__(self, params: RandomSubsetParams):
        self.fraction = params.fraction

    def __call__(self, sim: torch.Tensor, positive_mask: torch.Tensor, margin: float) -> torch.Tensor:
        negatives = ~positive_mask & ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
        keep = torch.rand(sim.shape, device=sim.device) < self.fraction
        return negatives & keep


@simclr.hookimpl
def simclr_register_miners(registry: simclr.Registrar) -> None:
    registry.add("random_subset", RandomSubsetMiner, RandomSubsetParams, "keep a random fraction of negatives")


class StepCounterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(100, ge=1, description="print every this many steps")


class StepCounter:
    def __init__(self, params: StepCounterParams):
        self.every = params.every

    @simclr.hookimpl
    def simclr_on_log(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        if record["step"] % self.every == 0:
            print(f"step {record['step']}: loss {record['loss']:.3f}")


@simclr.hookimpl
def simclr_register_callbacks(registry: simclr.Registrar) -> None:
    registry.add("step_counter", StepCounter, StepCounterParams, "print the loss every N steps")
