"""The built-in backbones, built through the registry: shapes, parameter counts against torchvision's own
models, state_dict round trips and compatibility with torchvision's ResNet."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

import simclr


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet50", 2048), ("small_resnet", 64)])
@pytest.mark.parametrize("size", [16, 96])
def test_features_have_feature_dim(name, dim, size):
    model = simclr.create("backbone", name, size).eval()
    assert model.feature_dim == dim
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, dim)


@pytest.mark.parametrize(
    ("name", "builder"),
    [("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)],
)
def test_cifar_stem_parameter_count_is_torchvisions_minus_fc_and_the_7x7_conv(name, builder):
    reference = builder()
    expected = count(reference) - count(reference.fc) - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3
    model = simclr.create("backbone", name, 32)
    assert count(model) == expected
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.bias is None
    assert isinstance(model.maxpool, nn.Identity) and isinstance(model.fc, nn.Identity)


def test_cifar_stem_defaults_on_up_to_64_px_and_can_be_forced():
    assert simclr.create("backbone", "resnet18", 64).conv1.kernel_size == (3, 3)
    imagenet_stem = simclr.create("backbone", "resnet18", 96)
    assert imagenet_stem.conv1.kernel_size == (7, 7) and isinstance(imagenet_stem.maxpool, nn.MaxPool2d)
    assert count(imagenet_stem) == count(torchvision.models.resnet18()) - 512 * 1000 - 1000
    assert simclr.create("backbone", "resnet18", 96, cifar_stem=True).conv1.kernel_size == (3, 3)
    assert simclr.create("backbone", "resnet18", 32, cifar_stem=False).conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "small_resnet"])
def test_state_dict_round_trip_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    original = simclr.create("backbone", name, 16).eval()
    with torch.no_grad():  # move every weight and BatchNorm statistic off its initial value
        for tensor in original.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    torch.save(original.state_dict(), tmp_path / "backbone.pt")
    restored = simclr.create("backbone", name, 16).eval()
    restored.load_state_dict(torch.load(tmp_path / "backbone.pt", weights_only=True))
    images = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = original(images)
        assert not torch.equal(simclr.create("backbone", name, 16).eval()(images), expected)
        torch.testing.assert_close(restored(images), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "builder"),
    [("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)],
)
def test_state_dict_loads_into_torchvisions_resnet_with_the_cifar_stem(name, builder):
    model = simclr.create("backbone", name, 32).eval()
    reference = builder()
    reference.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    missing, unexpected = reference.load_state_dict(model.state_dict(), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    reference.maxpool, reference.fc = nn.Identity(), nn.Identity()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reference.eval()(images), model(images), rtol=0, atol=0)


def test_zero_init_residual_zeroes_the_last_norm_of_every_residual_branch():
    for name, block, norm in (
        ("resnet18", BasicBlock, "bn2"),
        ("resnet50", Bottleneck, "bn3"),
        ("small_resnet", BasicBlock, "bn2"),
    ):
        model = simclr.create("backbone", name, 32, zero_init_residual=True)
        blocks = [m for m in model.modules() if isinstance(m, block)]
        assert blocks and all(getattr(b, norm).weight.abs().sum() == 0 for b in blocks)
        default = simclr.create("backbone", name, 32)
        assert all(getattr(b, norm).weight.abs().sum() > 0 for b in default.modules() if isinstance(b, block))


def test_small_resnet_width_and_depth():
    model = simclr.create("backbone", "small_resnet", 16, width=8, depth=2)
    assert model.feature_dim == 32
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 6
    # widths 8, 16, 32: 3x3 convs in the stem and in each block, 1x1 downsampling at each widening
    convs = (
        3 * 9 * 8
        + 2 * (2 * 9 * 8 * 8)
        + (9 * 8 * 16 + 3 * 9 * 16 * 16 + 8 * 16)
        + (9 * 16 * 32 + 3 * 9 * 32 * 32 + 16 * 32)
    )
    norms = 2 * (8 + 4 * 8 + 4 * 16 + 16 + 4 * 32 + 32)
    assert count(model) == convs + norms
    images = torch.randn(4, 3, 16, 16, requires_grad=True)
    model(images).sum().backward()
    assert images.grad is not None and all(p.grad is not None for p in model.parameters())


def test_invalid_params_are_config_errors():
    with pytest.raises(simclr.ConfigError, match="widht"):
        simclr.create("backbone", "small_resnet", 32, widht=8)
    with pytest.raises(simclr.ConfigError, match="width"):
        simclr.create("backbone", "small_resnet", 32, width=0)


def test_the_backbone_check_changes_no_state_and_keeps_each_modules_mode():
    """check_backbone_output's trial forward (of blank images, to check feature_dim) must leave the network as
    built: the same weights and BatchNorm statistics, and a module a plugin froze in eval mode still frozen."""
    from simclr.contracts import check_backbone_output
    from simclr.runtime import Runtime

    backbone = simclr.create("backbone", "small_resnet", 16, width=4)
    frozen = next(m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    frozen.eval()
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    modes = [m.training for m in backbone.modules()]
    rng = torch.get_rng_state()
    check_backbone_output(backbone, "small_resnet", 16, Runtime(torch.device("cpu"), "fp32", True))
    assert all(torch.equal(before[key], value) for key, value in backbone.state_dict().items())
    assert [m.training for m in backbone.modules()] == modes and not frozen.training and backbone.training
    assert torch.equal(torch.get_rng_state(), rng)


class CountingLazy(nn.Module):
    """A plugin-style backbone with a lazy layer and a non-persistent buffer a training step changes."""

    feature_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.norm = nn.BatchNorm2d(6)
        self.head = nn.LazyLinear(4)
        self.register_buffer("training_steps", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.training_steps += 1
        return self.head(self.norm(self.conv(x)).mean((2, 3)))


def test_the_backbone_check_takes_lazy_layers_and_restores_buffers_outside_the_state_dict():
    from simclr.contracts import check_backbone_output
    from simclr.runtime import Runtime

    backbone = CountingLazy()
    check_backbone_output(backbone, "lazy", 8, Runtime(torch.device("cpu"), "fp32", False))
    assert backbone.head.weight.shape == (4, 6)  # materialised by the eval-mode trial, not an error
    assert backbone.training_steps.item() == 0 and backbone.norm.num_batches_tracked.item() == 0
    assert torch.equal(backbone.norm.running_mean, torch.zeros(6))
