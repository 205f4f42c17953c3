"""The SimCLR network: a backbone (a plugin) followed by a projection head: the paper's 2-layer one by default,
the linear head or none of its projection-head study, or a deeper one as in SimCLRv2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from simclr.schema import Experiment


class ProjectionHead(nn.Sequential):
    """``layers - 1`` blocks of Linear -> BatchNorm -> ReLU, then a Linear: 2 layers is SimCLR's head, 3 is
    SimCLRv2's deeper one, 1 is the paper's "linear projection"; the loss sees its output."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2):
        if layers < 1:
            raise ValueError(f"a projection head has at least 1 layer, not {layers}")
        blocks: list[nn.Module] = []
        for index in range(layers - 1):
            blocks += [
                nn.Linear(in_dim if index == 0 else hidden_dim, hidden_dim, bias=False),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*blocks, nn.Linear(hidden_dim if layers > 1 else in_dim, out_dim))


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2) -> nn.Module:
    """:class:`ProjectionHead` with ``layers`` linear layers; 0: none, the loss sees the backbone's features (the
    paper's projection-head study compares 0, 1 and 2)."""
    return ProjectionHead(in_dim, hidden_dim, out_dim, layers) if layers else nn.Identity()


class SimCLRModel(nn.Module):
    """``forward(images) -> projections``; ``backbone(images)`` gives the features used for evaluation."""

    def __init__(self, backbone: nn.Module, hidden_dim: int | None = None, out_dim: int = 128, layers: int = 2):
        super().__init__()
        self.backbone = backbone
        self.feature_dim: int = backbone.feature_dim
        self.head = projection_head(self.feature_dim, hidden_dim or self.feature_dim, out_dim, layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def build_model(experiment: Experiment, image_size: int) -> SimCLRModel:
    """The experiment's network for images of ``image_size``: its backbone (built by its plugin) and head."""
    backbone = experiment.model.backbone.build(image_size)
    projection = experiment.model.projection
    return SimCLRModel(backbone, projection.hidden_dim, projection.out_dim, projection.layers)
