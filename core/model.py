"""The SimCLR network: a backbone (a plugin) followed by a projection head: the paper's 2-layer one by default,
or the linear head or none of its projection-head study."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """Linear -> BatchNorm -> ReLU -> Linear, as in SimCLR; the loss sees its output."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2) -> nn.Module:
    """2 layers: :class:`ProjectionHead`; 1: one Linear (the paper's "linear projection"); 0: none, the loss sees
    the backbone's features."""
    if layers == 2:
        return ProjectionHead(in_dim, hidden_dim, out_dim)
    if layers == 1:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    if layers == 0:
        return nn.Identity()
    raise ValueError(f"a projection head has 0, 1 or 2 layers, not {layers}")


class SimCLRModel(nn.Module):
    """``forward(images) -> projections``; ``backbone(images)`` gives the features used for evaluation."""

    def __init__(self, backbone: nn.Module, hidden_dim: int | None = None, out_dim: int = 128, layers: int = 2):
        super().__init__()
        self.backbone = backbone
        self.feature_dim: int = backbone.feature_dim
        self.head = projection_head(self.feature_dim, hidden_dim or self.feature_dim, out_dim, layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))
