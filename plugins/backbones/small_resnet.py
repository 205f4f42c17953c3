"""A narrow three-stage ResNet that pre-trains on small images (digits, 16-32 px) on a laptop CPU."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from simclr.plugins.backbones.params import SmallResNetParams


class SmallResNet(nn.Module):
    """3x3 stem, then three stages of basic blocks at widths w, 2w, 4w (strides 1, 2, 2), global average pool.
    ``feature_dim`` = 4w."""

    def __init__(self, width: int = 16, depth: int = 1, zero_init_residual: bool = False):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width
        for stage, stride in enumerate((1, 2, 2)):
            planes = width * 2**stage
            blocks = []
            for block in range(depth):
                downsample = None
                if block == 0 and (stride != 1 or channels != planes):
                    downsample = nn.Sequential(
                        nn.Conv2d(channels, planes, kernel_size=1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes),
                    )
                blocks.append(BasicBlock(channels, planes, stride if block == 0 else 1, downsample))
                channels = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(images))).flatten(1)


def small_resnet(params: SmallResNetParams, image_size: int) -> SmallResNet:
    return SmallResNet(params.width, params.depth, params.zero_init_residual)
