"""Margin triplet loss: t_ik = max(s_ik − s_i,p(i) + m, 0), averaged over the (i, k) pairs a miner selects.

Diagnostics: ``selected_frac``, the fraction of all negative pairs the miner selected, and ``active_frac``, the
fraction of the selected pairs whose term is non-zero (those that still train)."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

import simclr
from simclr.plugins.losses.pairs import PairLoss, Pairs


class MarginTripletParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    margin: float = Field(0.8, ge=0, description="margin m")
    miner: Annotated[str | dict[str, Any], simclr.ComponentRef("miner")] = Field(
        "semi_hard",
        description="negative miner: a name, or {name: ..., <params>} (see `simclr plugins list --kind miner`)",
    )


class MarginTriplet(PairLoss):
    def __init__(self, margin: float, miner: str | dict[str, Any]) -> None:
        super().__init__()
        self.margin = margin
        self.miner_name = miner if isinstance(miner, str) else miner["name"]
        self.miner = simclr.create_ref("miner", miner)

    def pair_loss(self, sim: Tensor, pairs: Pairs) -> tuple[Tensor, dict[str, Tensor]]:
        s_pos = sim.gather(1, pairs.positive[:, None])
        terms = (sim - s_pos + self.margin).clamp(min=0)
        with torch.no_grad():
            selected = self.miner(sim.detach(), pairs.positive_mask, self.margin)
            if selected.shape != sim.shape or selected.dtype != torch.bool:
                raise simclr.PluginError(
                    f"{simclr.component_label('miner', self.miner_name)} returned {selected.dtype} "
                    f"{tuple(selected.shape)}; a miner must return a bool mask of the similarity matrix's shape "
                    f"{tuple(sim.shape)}."
                )
            selected = selected & pairs.negative_mask
            count = selected.sum()
            active = (selected & (terms > 0)).sum()
        loss = torch.where(selected, terms, 0.0).sum() / count.clamp(min=1)
        return loss, {
            "selected_frac": count.float() / pairs.num_negatives,
            "active_frac": active.float() / count.clamp(min=1),
        }


def build_margin_triplet(params: MarginTripletParams) -> MarginTriplet:
    return MarginTriplet(params.margin, params.miner)
