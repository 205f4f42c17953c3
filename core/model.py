"""The SimCLR network: a backbone (a plugin) followed by the paper's 2-layer projection head."""

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


class SimCLRModel(nn.Module):
    """``forward(images) -> projections``; ``backbone(images)`` gives the features used for evaluation."""

    def __init__(self, backbone: nn.Module, hidden_dim: int | None = None, out_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.feature_dim: int = backbone.feature_dim
        self.head = ProjectionHead(self.feature_dim, hidden_dim or self.feature_dim, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))
