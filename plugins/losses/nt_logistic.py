"""NT-Logistic: ℓ⁺ = −log σ(s/τ) on positive pairs, ℓ⁻ = −log σ(−s/τ) on negative pairs, balanced by
``none`` (plain mean), ``weight`` (½ mean ℓ⁺ + ½ mean ℓ⁻) or ``sample`` (under-sampled negatives)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

import simclr
from simclr.plugins.losses.pairs import PairLoss, Pairs

Balance = Literal["none", "sample", "weight"]


class NTLogisticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.2, gt=0, description="temperature τ")
    balance: Balance = Field(
        "weight",
        description="none: mean over all pairs; weight: ½ positive mean + ½ negative mean; "
        "sample: draw negatives_per_positive negatives per row",
    )
    negatives_per_positive: int = Field(1, ge=1, description="negatives drawn per row when balance=sample")


def sample_negatives(negative_mask: Tensor, k: int) -> Tensor:
    """Per row, k of the row's negatives drawn uniformly without replacement (the top k of random keys), as a
    bool mask. Uses the global torch RNG of the mask's device; needs k <= the negatives of every row."""
    keys = torch.rand(negative_mask.shape, device=negative_mask.device).masked_fill(~negative_mask, -1.0)
    drawn = torch.zeros_like(negative_mask)
    return drawn.scatter_(1, keys.topk(k, dim=1).indices, True)


class NTLogistic(PairLoss):
    def __init__(self, temperature: float, balance: Balance, negatives_per_positive: int) -> None:
        super().__init__()
        self.temperature = temperature
        self.balance = balance
        self.negatives_per_positive = negatives_per_positive

    def pair_loss(self, sim: Tensor, pairs: Pairs) -> tuple[Tensor, dict[str, Tensor]]:
        logits = sim / self.temperature
        positive = torch.where(pairs.positive_mask, F.softplus(-logits), 0.0).sum()
        rows = 2 * pairs.n
        if self.balance == "sample":
            k = self.negatives_per_positive
            if k > rows - 2:
                raise simclr.UserError(
                    f"loss.negatives_per_positive is {k}, but a batch of {pairs.n} images has only {rows - 2} "
                    f"negatives per row; lower it to at most {rows - 2} or use a larger batch."
                )
            drawn = sample_negatives(pairs.negative_mask, k)
            negative = torch.where(drawn, F.softplus(logits), 0.0).sum()
            return (positive + negative) / (rows * (1 + k)), {}
        negative = torch.where(pairs.negative_mask, F.softplus(logits), 0.0).sum()
        if self.balance == "weight":
            return 0.5 * positive / rows + 0.5 * negative / pairs.num_negatives, {}
        return (positive + negative) / (rows * (rows - 1)), {}


def build_nt_logistic(params: NTLogisticParams) -> NTLogistic:
    return NTLogistic(params.temperature, params.balance, params.negatives_per_positive)
