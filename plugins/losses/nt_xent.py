"""NT-Xent: L = mean_i −log( exp(s_i,p(i)/τ) / Σ_{k≠i} exp(s_ik/τ) )."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from simclr.plugins.losses.pairs import PairLoss, Pairs


class NTXentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.5, gt=0, description="softmax temperature τ")


class NTXent(PairLoss):
    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def pair_loss(self, sim: Tensor, pairs: Pairs) -> tuple[Tensor, dict[str, Tensor]]:
        logits = (sim / self.temperature).masked_fill(pairs.eye, float("-inf"))
        return F.cross_entropy(logits, pairs.positive), {}


def build_nt_xent(params: NTXentParams) -> NTXent:
    return NTXent(params.temperature)
