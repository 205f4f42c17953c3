"""torchvision's ResNet-18/50 as SimCLR backbones: no classifier, optionally the CIFAR stem."""

from __future__ import annotations

import torchvision
from torch import nn

from simclr.plugins.backbones.params import ResNetParams

#: images of at most this many pixels a side get the CIFAR stem unless the config says otherwise
CIFAR_STEM_MAX_SIZE = 64


def resnet(depth: int, params: ResNetParams, image_size: int) -> torchvision.models.ResNet:
    """torchvision's ResNet-``depth`` with ``fc`` = Identity and ``feature_dim`` set. The CIFAR stem replaces
    ``conv1`` by a 3x3 stride-1 conv and ``maxpool`` by Identity; module names stay torchvision's, so the
    state_dict loads into ``torchvision.models.resnetNN()`` (with the same ``conv1``) apart from ``fc``."""
    builder = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth]
    model = builder(weights=None, zero_init_residual=params.zero_init_residual)
    cifar_stem = params.cifar_stem if params.cifar_stem is not None else image_size <= CIFAR_STEM_MAX_SIZE
    if cifar_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    model.feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model
