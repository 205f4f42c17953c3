"""Built-in backbones plugin: resnet18, resnet50, small_resnet.

Each factory imports its network when called, so that loading the plugin does not import torchvision.
"""

from torch import nn

import simclr
from simclr.plugins.backbones.params import ResNetParams, SmallResNetParams


def build_resnet18(params: ResNetParams, image_size: int) -> nn.Module:
    from simclr.plugins.backbones.resnet import resnet

    return resnet(18, params, image_size)


def build_resnet50(params: ResNetParams, image_size: int) -> nn.Module:
    from simclr.plugins.backbones.resnet import resnet

    return resnet(50, params, image_size)


def build_small_resnet(params: SmallResNetParams, image_size: int) -> nn.Module:
    from simclr.plugins.backbones.small_resnet import small_resnet

    return small_resnet(params, image_size)


@simclr.hookimpl
def simclr_register_backbones(registry: simclr.Registrar) -> None:
    registry.add("resnet18", build_resnet18, ResNetParams, "torchvision ResNet-18 without fc (512 features)")
    registry.add("resnet50", build_resnet50, ResNetParams, "torchvision ResNet-50 without fc (2048 features)")
    registry.add("small_resnet", build_small_resnet, SmallResNetParams, "narrow 3-stage ResNet for small images on CPU")
